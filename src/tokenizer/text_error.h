// The error for bad input to encode/decode (as opposed to a bad tokenizer.json, a ConfigError).
#pragma once

#include "common/error.h"

namespace difftx {

// The text or the ids given to the tokenizer cannot be processed: text that is not valid UTF-8
// (the message gives the byte offset), an id outside the vocabulary, a chat message list that the
// chosen chat format cannot express. Derives from Error, so the CLI reports it and exits with 2.
class TextError : public Error {
 public:
  using Error::Error;
};

}  // namespace difftx
