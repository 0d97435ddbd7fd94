#include "train/checkpoint.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <regex>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/model_files.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "model/lora.h"
#include "model/model_dir.h"

namespace fs = std::filesystem;

namespace difftx {

ordered_json trainer_state_json(const TrainerState& s) {
  return {{"global_step", s.global_step}, {"micro_batches", s.micro_batches}, {"total_steps", s.total_steps},
          {"steps_per_epoch", s.steps_per_epoch}, {"warmup_steps", s.warmup_steps}, {"epoch", s.epoch},
          {"seed", s.seed}, {"world_size", s.world_size},
          {"gradient_accumulation_steps", s.gradient_accumulation_steps}, {"micro_batch_size", s.micro_batch_size},
          {"log_history", s.log_history}};
}

TrainerState trainer_state_parse(const ordered_json& j, const std::string& label) {
  TrainerState s;
  try {
    s.global_step = j.at("global_step").get<int64_t>();
    s.micro_batches = j.at("micro_batches").get<int64_t>();
    s.total_steps = j.at("total_steps").get<int64_t>();
    s.steps_per_epoch = j.at("steps_per_epoch").get<int64_t>();
    s.warmup_steps = j.at("warmup_steps").get<int64_t>();
    s.epoch = j.at("epoch").get<double>();
    s.seed = j.at("seed").get<uint64_t>();
    s.world_size = j.value("world_size", int64_t{1});
    s.gradient_accumulation_steps = j.value("gradient_accumulation_steps", int64_t{0});
    s.micro_batch_size = j.value("micro_batch_size", int64_t{0});
    s.log_history = j.value("log_history", ordered_json::array());
  } catch (const ordered_json::exception& e) {
    fail<FileError>("{}: malformed trainer state: {}", label, e.what());
  }
  if (s.global_step < 0 || s.micro_batches < 0 || s.world_size < 1 || s.gradient_accumulation_steps < 0)
    fail<FileError>("{}: malformed trainer state: global_step {}, micro_batches {}, world_size {}, "
                    "gradient_accumulation_steps {} (none may be negative; world_size is at least 1)",
                    label, s.global_step, s.micro_batches, s.world_size, s.gradient_accumulation_steps);
  // Each step takes gradient_accumulation_steps micro-batches on each rank.
  int64_t per_step = 0, expected = 0;
  if (s.gradient_accumulation_steps > 0 &&
      (__builtin_mul_overflow(s.gradient_accumulation_steps, s.world_size, &per_step) ||
       __builtin_mul_overflow(s.global_step, per_step, &expected) || s.micro_batches != expected))
    fail<FileError>("{}: malformed trainer state: micro_batches {} should be global_step {} x "
                    "gradient_accumulation_steps {} x world_size {}",
                    label, s.micro_batches, s.global_step, s.gradient_accumulation_steps, s.world_size);
  return s;
}

fs::path checkpoint_save(const fs::path& output_dir, const Model& model, std::span<const float> exp_avg,
                         std::span<const float> exp_avg_sq, const TrainerState& state, const fs::path& tokenizer_dir) {
  const fs::path dir = output_dir / fmt::format("checkpoint-{}", state.global_step);
  StagedDirectory out(dir, /*overwrite=*/true);
  if (model.lora_training())
    lora_save(out.staging(), model);  // the adapters and the tensors trained whole; the base is the run's base_model
  else
    model_save(model, out.staging(), DType::F32);
  std::vector<TensorWrite> moments;
  for (const auto& p : model.trained_table().params()) {
    if (!is_trainable(p.kind)) continue;
    moments.push_back({"exp_avg." + p.name, p.shape, exp_avg.data() + p.offset, DType::F32});
    moments.push_back({"exp_avg_sq." + p.name, p.shape, exp_avg_sq.data() + p.offset, DType::F32});
  }
  safetensors_write(out.staging() / kOptimizerFile, moments);
  copy_model_files(tokenizer_dir, out.staging());
  json_write_file(out.staging() / kTrainerStateFile, trainer_state_json(state));
  out.commit();
  return dir;
}

std::vector<fs::path> checkpoint_list(const fs::path& output_dir) {
  static const std::regex name(R"(checkpoint-(\d+))");
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return {};
  for (const auto& e : fs::directory_iterator(output_dir, ec)) {
    std::smatch m;
    const std::string n = e.path().filename().string();
    if (e.is_directory() && std::regex_match(n, m, name) && fs::exists(e.path() / kTrainerStateFile))
      found.emplace_back(std::stoll(m[1]), e.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

void checkpoint_prune(const fs::path& output_dir, int64_t keep) {
  if (keep <= 0) return;
  auto list = checkpoint_list(output_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < list.size(); ++i) {
    try {
      remove_tree_atomically(list[i]);  // never a half-deleted checkpoint under its own name
    } catch (const FileError& e) {
      spdlog::warn("could not prune an old checkpoint: {}", e.what());
    }
  }
}

TrainerState checkpoint_load_state(const fs::path& dir, AdamW& optimizer, const ParamTable& table) {
  TrainerState s = trainer_state_parse(json_read_file(dir / kTrainerStateFile), (dir / kTrainerStateFile).string());
  SafetensorsFile moments(dir / kOptimizerFile);
  // A sharded optimizer (ZeRO-1) reads the whole moments and keeps its shards.
  AlignedVector<float> whole_m, whole_v;
  if (optimizer.sharded()) {
    whole_m.assign(table.buffer_floats(), 0.0f);
    whole_v.assign(table.buffer_floats(), 0.0f);
  }
  AlignedVector<float>& m = optimizer.sharded() ? whole_m : optimizer.exp_avg();
  AlignedVector<float>& v = optimizer.sharded() ? whole_v : optimizer.exp_avg_sq();
  for (const auto& p : table.params()) {
    if (!is_trainable(p.kind)) continue;
    for (auto [prefix, buffer] : {std::pair{"exp_avg.", &m}, {"exp_avg_sq.", &v}}) {
      const TensorInfo* t = moments.find(prefix + p.name);
      if (t == nullptr || t->shape != p.shape)
        fail<FileError>("{}: tensor \"{}{}\" is missing or has the wrong shape", (dir / kOptimizerFile).string(),
                        prefix, p.name);
      moments.load_f32(*t, buffer->data() + p.offset);
    }
  }
  if (optimizer.sharded()) optimizer.keep_owned(whole_m, whole_v);
  optimizer.set_steps(s.global_step);
  return s;
}

}  // namespace difftx
