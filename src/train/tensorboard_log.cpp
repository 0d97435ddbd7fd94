#include "train/tensorboard_log.h"

namespace difftx {
namespace {

void add_scalars(const ordered_json& object, const std::string& prefix,
                 std::vector<std::pair<std::string, float>>& out) {
  for (const auto& [key, value] : object.items()) {
    if (prefix.empty() && key == "step") continue;
    const std::string tag = prefix.empty() ? key : prefix + "/" + key;
    if (value.is_number())
      out.emplace_back(tag, value.get<float>());
    else if (value.is_object())
      add_scalars(value, tag, out);
  }
}

}  // namespace

std::vector<std::pair<std::string, float>> record_scalars(const ordered_json& record) {
  std::vector<std::pair<std::string, float>> out;
  if (record.is_object()) add_scalars(record, "", out);
  return out;
}

TensorBoardLog::TensorBoardLog(const std::filesystem::path& dir, int64_t first_step) : writer_(dir) {
  if (first_step > 0) writer_.session_start(first_step + 1, unix_seconds_now());
}

void TensorBoardLog::append(const ordered_json& record) {
  writer_.scalars(record.value("step", int64_t{0}), unix_seconds_now(), record_scalars(record));
}

}  // namespace difftx
