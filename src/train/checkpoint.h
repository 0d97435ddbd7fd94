// Training checkpoints: output_dir/checkpoint-N/ holds the model in Hugging Face layout (float32,
// so that training resumes exactly; a LoRA run's: its adapter in PEFT's format, model/lora.h), the tokenizer files, the AdamW moments
// (optimizer.safetensors: exp_avg.<name>, exp_avg_sq.<name>) and trainer_state.json (step, data
// position, schedule, log history). Each checkpoint is staged beside its final name and renamed
// in when complete, so a checkpoint directory that exists is complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "io/json_file.h"
#include "model/model.h"
#include "train/optimizer.h"

namespace difftx {

inline constexpr const char* kTrainerStateFile = "trainer_state.json";
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";

struct TrainerState {
  int64_t global_step = 0;      // optimizer steps taken
  int64_t micro_batches = 0;    // micro-batches consumed (the data position)
  int64_t total_steps = 0;
  int64_t steps_per_epoch = 0;
  int64_t warmup_steps = 0;
  double epoch = 0.0;
  uint64_t seed = 0;
  // The global batch the data position counts in: micro_batch_size x gradient_accumulation_steps x
  // world_size (checkpoints from before data parallelism: world_size 1, the others 0 = unknown).
  int64_t world_size = 1, gradient_accumulation_steps = 0, micro_batch_size = 0;
  ordered_json log_history = ordered_json::array();
};

ordered_json trainer_state_json(const TrainerState& s);
TrainerState trainer_state_parse(const ordered_json& j, const std::string& label);

// Writes output_dir/checkpoint-<global_step>; returns its path. exp_avg, exp_avg_sq: the AdamW
// moments in the layout of model.trained_table() (a sharded optimizer's are gathered first: trainer.cpp).
std::filesystem::path checkpoint_save(const std::filesystem::path& output_dir, const Model& model,
                                      std::span<const float> exp_avg, std::span<const float> exp_avg_sq,
                                      const TrainerState& state, const std::filesystem::path& tokenizer_dir);

// The checkpoint directories of output_dir, oldest first (complete ones: staging names never match).
std::vector<std::filesystem::path> checkpoint_list(const std::filesystem::path& output_dir);

// Deletes the oldest checkpoints so that at most `keep` remain (keep <= 0: keep all).
void checkpoint_prune(const std::filesystem::path& output_dir, int64_t keep);

// Loads a checkpoint's trainer state and optimizer moments into `optimizer` (its table must be
// the checkpoint model's; a sharded optimizer keeps its shards of them). Throws FileError naming the file when something is missing or malformed.
TrainerState checkpoint_load_state(const std::filesystem::path& dir, AdamW& optimizer, const ParamTable& table);

}  // namespace difftx
