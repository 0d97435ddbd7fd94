// Where a tokenizer meets a model: their vocabularies may differ in size (models often pad the
// embedding table beyond the tokenizer's ids; a mismatched tokenizer can be larger than the model).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace difftx {

// Throws ShapeError, naming `what` (the prompt, the text file), when an id is outside the model's
// vocabulary: the tokenizer does not match the model.
void check_tokenizer_fits(const Tokenizer& tokenizer, const Model& model, std::span<const int32_t> ids,
                          const std::string& what);

// A prompt's ids (with the tokenizer's BOS/EOS when `add_special_tokens`), checked against the
// model. Throws ConfigError naming `flag` when the text is not valid UTF-8 or gives no tokens, and
// ShapeError when an id does not fit the model (check_tokenizer_fits).
std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, const Model& model, const std::string& text,
                                   bool add_special_tokens, const std::string& flag);

// The ids the tokenizer can decode. A model with a padded vocabulary can generate ids the tokenizer
// does not have; transformers decodes them as nothing, and so does difftx.
std::vector<int32_t> decodable_ids(const Tokenizer& tokenizer, std::span<const int32_t> ids);
bool is_decodable(const Tokenizer& tokenizer, int32_t id);

}  // namespace difftx
