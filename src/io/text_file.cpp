#include "io/text_file.h"

#include "common/error.h"
#include "io/mapped_file.h"

namespace difftx {

std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes) {
  MappedFile file(path);
  if (file.size() > max_bytes)
    fail<FileError>("{}: {} bytes is larger than the {} byte limit", path.string(), file.size(), max_bytes);
  return std::string(reinterpret_cast<const char*>(file.data()), file.size());
}

}  // namespace difftx
