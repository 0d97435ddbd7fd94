// File names that make up a Hugging Face model directory besides config.json and the weights.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace difftx {

// Tokenizer and generation files that travel with a model (copied by convert and train when present).
inline constexpr const char* kTokenizerFiles[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "added_tokens.json", "vocab.json", "merges.txt", "generation_config.json", "chat_template.jinja",
};

// Copies each of kTokenizerFiles that `from` has into `to` (convert's output, every training
// checkpoint and the trained model: one list, one policy), each written atomically; a file that is
// already the same file is left alone. Returns the names copied. Throws FileError naming the file
// when one cannot be read or written (nothing half-written is left under its name).
std::vector<std::string> copy_model_files(const std::filesystem::path& from, const std::filesystem::path& to);

// model.safetensors, model-00001-of-00002.safetensors, model.safetensors.index.json.
inline bool is_model_weights_file(std::string_view name) {
  return name.starts_with("model") &&
         (name.ends_with(".safetensors") || name == "model.safetensors.index.json");
}

}  // namespace difftx
