// File names that make up a Hugging Face model directory besides config.json and the weights.
#pragma once

#include <string_view>

namespace difftx {

// Tokenizer and generation files that travel with a model (copied by convert and train when present).
inline constexpr const char* kTokenizerFiles[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "added_tokens.json", "vocab.json", "merges.txt", "generation_config.json", "chat_template.jinja",
};

// model.safetensors, model-00001-of-00002.safetensors, model.safetensors.index.json.
inline bool is_model_weights_file(std::string_view name) {
  return name.starts_with("model") &&
         (name.ends_with(".safetensors") || name == "model.safetensors.index.json");
}

}  // namespace difftx
