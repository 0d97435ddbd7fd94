// tokenizer.json "normalizer": text -> text, applied to each piece of the input between added
// tokens (tokenizers/src/normalizers/). Supported types:
//   Sequence {normalizers}     each in order
//   NFC, NFD, NFKC, NFKD       Unicode normalization forms (utf8proc)
//   Lowercase                  Rust char::to_lowercase per character
//   Strip {strip_left, strip_right}   removes White_Space characters at the ends
//   Replace {pattern, content} every match of {"String"|"Regex"} becomes `content`
//   Prepend {prepend}          prefixes `prepend` to non-empty text
#pragma once

#include <memory>
#include <string>

#include "tokenizer/json_ref.h"

namespace difftx::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text` (valid UTF-8) in place; the result is valid UTF-8.
  virtual void normalize(std::string& text) const = 0;
};

// Builds the normalizer described by `value` (a tokenizer.json object, or null -> nullptr).
// Throws ConfigError naming the JSON path for an unknown type or option.
std::unique_ptr<Normalizer> normalizer_from_json(const JsonRef& value);

}  // namespace difftx::tok
