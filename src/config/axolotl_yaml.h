// An axolotl YAML config file: parsed with yaml-cpp, key order kept, typed reads of its keys with
// errors that name the file, the key and the expected type.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <optional>
#include <string>

namespace difftx {

struct AxolotlYaml {
  std::filesystem::path path;
  YAML::Node root;  // a map

  // Absent or null -> nullopt; present with another type -> ConfigError naming the key.
  std::optional<std::string> string(const std::string& key) const;
  std::optional<bool> boolean(const std::string& key) const;
  std::optional<int64_t> integer(const std::string& key) const;
  std::optional<double> number(const std::string& key) const;  // finite: .nan and .inf are refused
};

// Throws FileError when the file is missing or unreadable, ConfigError (with line and column)
// when it is not YAML, its top level is not a mapping, or a mapping repeats a key.
AxolotlYaml axolotl_yaml_load(const std::filesystem::path& path);

// Emits the document as YAML text (block style, keys in their order). yaml-cpp does not keep
// comments, so the output has none.
std::string axolotl_yaml_dump(const YAML::Node& root);

}  // namespace difftx
