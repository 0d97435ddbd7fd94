// tokenizer.json "decoder": token strings -> text (tokenizers/src/decoders/). Each decoder maps a
// list of strings to a list of strings; decode() joins the final list. Supported types:
//   ByteLevel                 GPT-2 alphabet -> bytes (a token with a character outside the alphabet
//                             keeps its own UTF-8), then UTF-8 with invalid sequences as U+FFFD
//   Replace {pattern, content}   per token, like the normalizer
//   ByteFallback              runs of <0xXX> tokens -> their bytes as text; U+FFFD per byte when invalid
//   Fuse                      all tokens into one
//   Strip {content, start, stop}  removes up to `start` leading and `stop` trailing `content` chars per token
//   Metaspace {replacement, prepend_scheme, split}  replacement -> ' '; the first token loses them
//                             altogether unless prepend_scheme is "never"
//   Sequence {decoders}       each in order
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_ref.h"

namespace difftx::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Builds the decoder described by `value` (null -> nullptr: tokens are joined with spaces, as
// tokenizers does). Throws ConfigError naming the JSON path for an unknown type or option.
std::unique_ptr<Decoder> decoder_from_json(const JsonRef& value);

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
void utf8_lossy_append(std::string_view bytes, std::string& out);

}  // namespace difftx::tok
