// tokenizer.json "post_processor": the special tokens put around an encoded sequence when
// add_special_tokens is on (tokenizers/src/processors/). Supported types:
//   TemplateProcessing {single, pair, special_tokens}   e.g. single = "<s> $A": ids of <s>, then the text
//   ByteLevel {add_prefix_space, trim_offsets, use_regex} offsets only: adds no ids
//   Sequence {processors}                                each in order, the later ones wrapping the earlier
// difftx encodes single sequences, so only the single template is applied; the pair template is
// read and checked.
#pragma once

#include <cstdint>
#include <vector>

#include "tokenizer/json_ref.h"

namespace difftx::tok {

// What the post-processor does to one sequence: prefix + ids + suffix.
struct SingleTemplate {
  std::vector<int32_t> prefix, suffix;
};

// Reads the post_processor (null -> empty template). Throws ConfigError naming the JSON path for
// an unknown type or option, a template without exactly one $A, $B in the single template, or a
// special token missing from special_tokens.
SingleTemplate post_processor_from_json(const JsonRef& value);

}  // namespace difftx::tok
