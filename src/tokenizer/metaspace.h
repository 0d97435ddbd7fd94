// Options shared by the Metaspace pre-tokenizer and decoder
// (tokenizers/src/pre_tokenizers/metaspace.rs).
#pragma once

#include <string>

#include "tokenizer/json_ref.h"

namespace difftx::tok {

// When the pre-tokenizer prefixes the replacement character to a piece that does not start with one:
// always; only to the piece at the very start of the input (not after an added token); never.
enum class PrependScheme { always, first, never };

struct MetaspaceOptions {
  char32_t replacement = U'\u2581';
  std::string replacement_utf8 = "\u2581";
  PrependScheme scheme = PrependScheme::always;
  bool split = true;
};

// Reads replacement, prepend_scheme ("always" by default), split (true by default) and the legacy
// add_prefix_space (false means "never"; contradicting prepend_scheme is a ConfigError) and str_rep
// (ignored, as tokenizers does).
MetaspaceOptions metaspace_options_from_json(const JsonRef& value);

}  // namespace difftx::tok
