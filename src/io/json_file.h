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

inline constexpr int kJsonMaxDepth = 128;
inline constexpr uint64_t kJsonMaxFileBytes = 512ull << 20;

// Parses text. Throws FileError "<label>: ..." when it is not JSON, nests deeper than
// kJsonMaxDepth, or repeats a key within one object.
ordered_json json_parse(std::string_view text, const std::string& label);

// Reads and parses a file (at most kJsonMaxFileBytes). Errors name the path.
ordered_json json_read_file(const std::filesystem::path& path);

// Writes `value` (2-space indent, trailing newline) atomically: temp file, then rename.
void json_write_file(const std::filesystem::path& path, const ordered_json& value);

// A short description of a JSON value's type for error messages: "a string", "an integer", ...
std::string json_type_name(const ordered_json& value);

}  // namespace difftx
