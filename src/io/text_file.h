// Reading a user's text file (a corpus, a prompt file): a regular file of bounded size, so that a
// directory, a FIFO or /dev/zero is an error rather than an empty result or an endless read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace difftx {

inline constexpr uint64_t kTextFileMaxBytes = 4ull << 30;

// The file's bytes. Throws FileError naming the path when it is missing, not a regular file, or
// larger than max_bytes.
std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes = kTextFileMaxBytes);

}  // namespace difftx
