// axolotl's use_tensorboard: the records of metrics.jsonl also as TensorBoard scalars, in event
// files under output_dir/runs/ (io/event_file.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "io/event_file.h"
#include "io/json_file.h"

namespace difftx {

// The scalars of one metrics record: every number except "step", under its key as the tag
// ("loss", "eval_loss", "layer_3/lambda_full", ...); an object nested in the record gives
// "key/inner" tags. Booleans, strings and nulls are left out.
std::vector<std::pair<std::string, float>> record_scalars(const ordered_json& record);

class TensorBoardLog {
 public:
  // A new event file in `dir`. `first_step` > 0 (a resumed run) first writes a SessionLog START
  // at first_step + 1, so TensorBoard drops what the interrupted run logged after its checkpoint,
  // as MetricsLog::keep_up_to drops it from metrics.jsonl.
  TensorBoardLog(const std::filesystem::path& dir, int64_t first_step);
  // Writes the record's scalars at its "step". Throws FileError.
  void append(const ordered_json& record);
  const std::filesystem::path& path() const { return writer_.path(); }

 private:
  EventFileWriter writer_;
};

}  // namespace difftx
