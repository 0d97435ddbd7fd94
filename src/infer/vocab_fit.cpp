#include "infer/vocab_fit.h"

#include "common/error.h"

namespace difftx {

std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, const Model& model, const std::string& text,
                                   bool add_special_tokens, const std::string& flag) {
  EncodeOptions encode;
  encode.add_special_tokens = add_special_tokens;
  std::vector<int32_t> ids;
  try {
    ids = tokenizer.encode(text, encode);
  } catch (const TextError& e) {
    fail<ConfigError>("{}: {}", flag, e.what());
  }
  if (ids.empty()) fail<ConfigError>("{} gives no tokens (empty prompt and no BOS to start from)", flag);
  check_tokenizer_fits(tokenizer, model, ids, flag);
  return ids;
}

void check_tokenizer_fits(const Tokenizer& tokenizer, const Model& model, std::span<const int32_t> ids,
                          const std::string& what) {
  const int64_t V = model.config().vocab_size;
  for (int32_t id : ids)
    if (id < 0 || id >= V)
      fail<ShapeError>("{}: token id {} is outside the model's vocabulary (vocab_size {}): the tokenizer {} ({} ids) "
                       "does not match the model",
                       what, id, V, tokenizer.label(), tokenizer.vocab_size());
}

bool is_decodable(const Tokenizer& tokenizer, int32_t id) { return id >= 0 && id < tokenizer.vocab_size() && tokenizer.id_to_token(id) != nullptr; }

std::vector<int32_t> decodable_ids(const Tokenizer& tokenizer, std::span<const int32_t> ids) {
  std::vector<int32_t> out;
  for (int32_t id : ids)
    if (is_decodable(tokenizer, id)) out.push_back(id);
  return out;
}

}  // namespace difftx
