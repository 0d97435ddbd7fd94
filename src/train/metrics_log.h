// output_dir/metrics.jsonl: one JSON record per logged step, appended as the run goes.
#pragma once

#include <cstdint>
#include <filesystem>

#include "io/json_file.h"

namespace difftx {

class MetricsLog {
 public:
  explicit MetricsLog(std::filesystem::path file) : file_(std::move(file)) {}
  // Appends one line. Throws FileError when it cannot be written.
  void append(const ordered_json& record) const;
  // Keeps the records of steps up to `step` (resuming discards what the interrupted run logged
  // after its last checkpoint; a line cut by a crash is dropped). Rewritten atomically.
  void keep_up_to(int64_t step) const;
  const std::filesystem::path& path() const { return file_; }

 private:
  std::filesystem::path file_;
};

}  // namespace difftx
