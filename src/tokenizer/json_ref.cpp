#include "tokenizer/json_ref.h"

#include <vector>

#include "common/error.h"
#include "io/json_file.h"
#include "tokenizer/utf8.h"

namespace difftx::tok {

json tokenizer_json_parse(std::string_view text, const std::string& label) {
  return json_parse_unordered(text, label);
}

json tokenizer_json_read(const std::filesystem::path& path) { return json_read_file_unordered(path); }

std::string JsonRef::child_path(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return path_ + "." + std::string(key);
}

void JsonRef::fail(std::string_view message) const {
  throw ConfigError(fmt::format("{}: {} {}", label(), where(), message));
}

void JsonRef::fail_type(std::string_view type, std::string_view supported) const {
  throw ConfigError(fmt::format("{}: {} \"{}\" is not supported (supported: {})", label(), child_path("type"), type,
                                supported));
}

void JsonRef::expect_object() const {
  if (!value_->is_object()) fail(fmt::format("must be an object, got {}", json_type_name(*value_)));
}

JsonRef JsonRef::at(std::string_view key) const {
  expect_object();
  auto it = value_->find(std::string(key));
  if (it == value_->end())
    throw ConfigError(fmt::format("{}: {} is missing", label(), child_path(key)));
  return JsonRef(*it, *label_, child_path(key));
}

std::optional<JsonRef> JsonRef::find(std::string_view key) const {
  expect_object();
  auto it = value_->find(std::string(key));
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return JsonRef(*it, *label_, child_path(key));
}

JsonRef JsonRef::operator[](size_t i) const {
  size_t n = array_size();
  if (i >= n) fail(fmt::format("has {} elements; element {} is out of range", n, i));
  return JsonRef((*value_)[i], *label_, fmt::format("{}[{}]", path_, i));
}

size_t JsonRef::array_size() const {
  if (!value_->is_array()) fail(fmt::format("must be an array, got {}", json_type_name(*value_)));
  return value_->size();
}

bool JsonRef::as_bool() const {
  if (!value_->is_boolean()) fail(fmt::format("must be a boolean, got {}", json_type_name(*value_)));
  return value_->get<bool>();
}

std::string JsonRef::as_string() const {
  if (!value_->is_string()) fail(fmt::format("must be a string, got {}", json_type_name(*value_)));
  return value_->get<std::string>();
}

int64_t JsonRef::as_int() const {
  if (value_->is_number_unsigned()) {
    uint64_t u = value_->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) fail("is too large");
    return static_cast<int64_t>(u);
  }
  if (!value_->is_number_integer()) fail(fmt::format("must be an integer, got {}", json_type_name(*value_)));
  return value_->get<int64_t>();
}

double JsonRef::as_number() const {
  if (!value_->is_number()) fail(fmt::format("must be a number, got {}", json_type_name(*value_)));
  return value_->get<double>();
}

char32_t JsonRef::as_char() const {
  std::string s = as_string();
  if (s.empty() || utf8_find_invalid(s) != kValidUtf8) fail("must be a string of one character");
  size_t i = 0;
  char32_t cp = utf8_next(s, i);
  if (i != s.size()) fail(fmt::format("must be a string of one character, got \"{}\"", s));
  return cp;
}

bool JsonRef::get_bool(std::string_view key, bool fallback) const {
  auto v = find(key);
  return v ? v->as_bool() : fallback;
}

std::optional<std::string> JsonRef::get_string(std::string_view key) const {
  auto v = find(key);
  if (!v) return std::nullopt;
  return v->as_string();
}

void JsonRef::expect_keys(std::initializer_list<std::string_view> known) const {
  expect_object();
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    bool ok = false;
    for (auto k : known) ok = ok || k == it.key();
    if (!ok) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      throw ConfigError(fmt::format("{}: {} is not a known option here (known: {}); difftx does not guess what it means",
                                    label(), child_path(it.key()), list));
    }
  }
}

}  // namespace difftx::tok
