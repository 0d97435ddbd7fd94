// The keys by which an axolotl config names its model, read one way for every command that takes
// such a config (convert-diff-transformer, train, evaluate): base_model, tokenizer_config and
// special_tokens.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "config/axolotl_yaml.h"

namespace difftx {

struct ModelKeys {
  std::string base_model;        // required
  std::string tokenizer_config;  // "" when absent: the tokenizer is base_model's
  // special_tokens as written: {bos_token: "<s>", pad_token: ...}, in file order.
  std::vector<std::pair<std::string, std::string>> special_tokens;
};

// Throws ConfigError naming the file and key: base_model missing; special_tokens not a mapping, a
// name other than bos_token, eos_token, pad_token, unk_token, sep_token, cls_token, mask_token, or
// a value that is not a token string.
ModelKeys model_keys_read(const AxolotlYaml& yaml);

// base_model and tokenizer_config as local directories (config/local_dir.h), the tokenizer's
// defaulting to the model's.
struct ModelKeyDirs {
  std::filesystem::path model_dir, tokenizer_dir;
};
ModelKeyDirs model_keys_resolve(const ModelKeys& keys, const std::filesystem::path& yaml_path);

}  // namespace difftx
