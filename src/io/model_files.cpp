#include "io/model_files.h"

#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace fs = std::filesystem;

namespace difftx {

std::vector<std::string> copy_model_files(const fs::path& from, const fs::path& to) {
  std::vector<std::string> copied;
  for (const char* name : kTokenizerFiles) {
    std::error_code ec;
    if (!fs::is_regular_file(from / name, ec) || fs::equivalent(from / name, to / name, ec)) continue;
    const MappedFile src(from / name);
    AtomicFile dst(to / name);
    dst.write(src.data(), src.size());
    dst.commit();
    copied.emplace_back(name);
  }
  return copied;
}

}  // namespace difftx
