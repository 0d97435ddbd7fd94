#include "train/metrics_log.h"

#include <fstream>

#include "common/error.h"
#include "io/atomic_file.h"

namespace fs = std::filesystem;

namespace difftx {

void MetricsLog::append(const ordered_json& record) const {
  std::ofstream out(file_, std::ios::app);
  out << record.dump() << "\n";
  if (!out) fail<FileError>("{}: cannot append metrics", file_.string());
}

void MetricsLog::keep_up_to(int64_t step) const {
  std::error_code ec;
  if (!fs::exists(file_, ec)) return;
  std::ifstream in(file_);
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (json_parse(line, file_.string()).value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const Error&) {  // a line cut by a crash
    }
  }
  AtomicFile out(file_);
  out.write(kept.data(), kept.size());
  out.commit();
}

}  // namespace difftx
