// tokenizer.json "pre_tokenizer": cuts normalized text into the pieces ("words") that the model
// tokenizes independently (tokenizers/src/pre_tokenizers/). Supported types:
//   Sequence {pretokenizers}                 each in order, on every piece of the previous one
//   ByteLevel {add_prefix_space, use_regex, trim_offsets}
//                                            optional leading space, GPT-2 regex split, bytes -> GPT-2 alphabet
//   Split {pattern, behavior, invert}        split on {"String"|"Regex"} matches (see split.h)
//   Digits {individual_digits}               digits isolated one by one, or runs of digits
//   Metaspace {replacement, prepend_scheme, split}   ' ' -> replacement, optional prefix, split before it
//   Whitespace                               words \w+ and symbol runs [^\w\s]+, whitespace dropped
//   WhitespaceSplit                          split on White_Space, dropped
//   Punctuation {behavior}                   each punctuation character split off (default Isolated)
// trim_offsets only affects offsets, which difftx does not report, so it is accepted and ignored.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_ref.h"

namespace difftx::tok {

// Receives the pieces a pre-tokenizer produces, in order.
class PieceSink {
 public:
  // `at_start`: the piece starts the input text (tokenizers: offsets_original().0 == 0); only
  // Metaspace with prepend_scheme "first" looks at it. difftx sets it for a piece at byte 0 of the
  // normalized text of the input's first segment (not after an added token); tokenizers maps the
  // piece back to the original text, which differs only when a normalizer deleted the text's first
  // characters and a pre-tokenizer before Metaspace split right there. Empty pieces are never passed.
  virtual void piece(std::string_view text, bool at_start) = 0;

 protected:
  ~PieceSink() = default;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Cuts `text` (non-empty, valid UTF-8) into pieces and hands them to `out` as they are made, so
  // that no list of all pieces of a long text is ever built.
  virtual void pre_tokenize(std::string_view text, bool at_start, PieceSink& out) const = 0;
};

// Builds the pre-tokenizer described by `value` (null -> nullptr: each piece stays whole).
// Throws ConfigError naming the JSON path for an unknown type or option.
std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const JsonRef& value);

// The GPT-2 split regex that ByteLevel uses when use_regex is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace difftx::tok
