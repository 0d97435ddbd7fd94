// Reading tokenizer.json / tokenizer_config.json strictly: every error names the file and the JSON
// path of the value at fault, e.g.
//   tokenizer.json: pre_tokenizer.pretokenizers[1].type "Foo" is not supported (supported: ...)
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace difftx::tok {

using json = nlohmann::json;

// Parses tokenizer JSON with io/json_file.h's unordered reader (size and depth caps; a key repeated
// within one object is an error, since a vocab that lists a token twice is ambiguous). Tokenizer
// files need no key order, and std::map objects keep a 128k-token vocab fast to parse.
// Throws FileError naming `label` / the path.
json tokenizer_json_parse(std::string_view text, const std::string& label);
json tokenizer_json_read(const std::filesystem::path& path);

// A JSON value together with the file it came from and its path inside that file.
class JsonRef {
 public:
  JsonRef(const json& value, const std::string& label, std::string path = {})
      : value_(&value), label_(&label), path_(std::move(path)) {}

  const json& value() const { return *value_; }
  const std::string& label() const { return *label_; }
  // "model.vocab", "pre_tokenizer.pretokenizers[1]"; "(top level)" for the root.
  std::string where() const { return path_.empty() ? std::string("(top level)") : path_; }
  bool is_null() const { return value_->is_null(); }

  // Object member `key`; throws ConfigError "<label>: <path>.<key> is missing" when absent.
  JsonRef at(std::string_view key) const;
  // Object member, or nullopt when absent or null.
  std::optional<JsonRef> find(std::string_view key) const;
  // Array element i (the value must be an array and i in range).
  JsonRef operator[](size_t i) const;
  // Number of elements of an array (throws when the value is not an array).
  size_t array_size() const;

  // Typed reads: ConfigError "<label>: <path> must be <kind>, got <type>" on mismatch.
  bool as_bool() const;
  std::string as_string() const;
  int64_t as_int() const;
  double as_number() const;
  // A string holding exactly one Unicode character (Rust `char` fields such as Metaspace.replacement).
  char32_t as_char() const;

  // Optional members with defaults (absent or null -> default).
  bool get_bool(std::string_view key, bool fallback) const;
  std::optional<std::string> get_string(std::string_view key) const;

  // Throws when the value is not an object, or when it has a key outside `known`; the message names
  // the unknown key and lists the known ones (an option difftx does not know might change the output).
  void expect_keys(std::initializer_list<std::string_view> known) const;
  void expect_object() const;

  // Throws ConfigError "<label>: <path> <message>".
  [[noreturn]] void fail(std::string_view message) const;
  // Throws ConfigError "<label>: <path>.type "X" is not supported (supported: <list>)"; `this` is
  // the object holding "type".
  [[noreturn]] void fail_type(std::string_view type, std::string_view supported) const;

 private:
  std::string child_path(std::string_view key) const;
  const json* value_;
  const std::string* label_;
  std::string path_;
};

}  // namespace difftx::tok
