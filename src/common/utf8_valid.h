// UTF-8 validation (RFC 3629), shared by every reader of text files: tokenizer.json, datasets,
// axolotl YAML.
#pragma once

#include <cstddef>
#include <string_view>

namespace difftx {

inline constexpr size_t kValidUtf8 = static_cast<size_t>(-1);

// Byte offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence), or kValidUtf8.
size_t utf8_find_invalid(std::string_view s);

}  // namespace difftx
