// Reading JSON from untrusted files: size and nesting caps, duplicate keys rejected, errors that
// name the file. Key order is preserved (ordered_json) so that files can be written back as read.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace difftx {

using ordered_json = nlohmann::ordered_json;
using unordered_json = nlohmann::json;  // std::map objects: keys sorted, inserted in log time

inline constexpr int kJsonMaxDepth = 128;
inline constexpr uint64_t kJsonMaxFileBytes = 512ull << 20;

// Parses text. Throws FileError "<label>: ..." when it is not JSON, nests deeper than
// kJsonMaxDepth, or repeats a key within one object.
ordered_json json_parse(std::string_view text, const std::string& label);

// Reads and parses a file (at most kJsonMaxFileBytes). Errors name the path.
ordered_json json_read_file(const std::filesystem::path& path);

// The same checks, into std::map objects: for large files whose key order does not matter (a
// 128k-token tokenizer vocab parses in ~0.5 s this way, ~12 s as ordered_json, whose key insertion
// is linear).
unordered_json json_parse_unordered(std::string_view text, const std::string& label);
unordered_json json_read_file_unordered(const std::filesystem::path& path);

// Writes `value` (2-space indent, trailing newline) atomically: temp file, then rename.
void json_write_file(const std::filesystem::path& path, const ordered_json& value);

// A short description of a JSON value's type for error messages: "a string", "an integer", ...
std::string json_type_name(const ordered_json& value);
std::string json_type_name(const unordered_json& value);

}  // namespace difftx
