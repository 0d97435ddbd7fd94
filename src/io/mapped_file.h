// A read-only memory map of a whole file.
#pragma once

#include <cstddef>
#include <filesystem>

namespace difftx {

class MappedFile {
 public:
  // Maps the file read-only. Throws FileError naming the path when it is missing, not a regular
  // file, or cannot be opened or mapped. An empty file maps to size() == 0.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const std::byte* data() const { return data_; }
  // Tells the kernel the bytes [offset, offset + length) will not be read again soon, so their
  // pages leave this process's resident set (they are re-read from the file if touched again).
  // Used after converting a tensor, so that loading does not hold the file and the weights at once.
  void release_pages(size_t offset, size_t length) const;
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void release();
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace difftx
