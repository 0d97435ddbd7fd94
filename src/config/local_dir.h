// Model and tokenizer locations named in an axolotl config: local directories only.
#pragma once

#include <filesystem>
#include <string>

namespace difftx {

// Resolves `value` of `key` (base_model, tokenizer_config): a local directory, relative paths
// from the current directory. Throws ConfigError naming the key; a value that looks like a
// Hugging Face Hub id ("org/name") gets a message saying to download it first (difftx never
// downloads).
std::filesystem::path resolve_local_dir(const std::string& key, const std::string& value,
                                        const std::filesystem::path& yaml_path);

}  // namespace difftx
