// `difftx train CONFIG.yml` and `difftx evaluate CONFIG.yml` as library calls: fine-tuning a
// model directory on an axolotl config, with the diff-transformer plugin's warm-up and monitoring
// (spec §6), metrics in output_dir/metrics.jsonl, checkpoints and exact resumption.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "config/train_config.h"
#include "common/error.h"
#include "io/json_file.h"
#include "train/collective.h"

namespace difftx {

struct TrainRunOptions {
  bool overwrite = false;              // replace an output_dir that already holds a run
  std::optional<int64_t> max_steps;    // overrides the config (a short run)
  std::string resume_from_checkpoint;  // overrides the config
  bool progress = true;                // progress lines on stderr
  // Data-parallel ranks (train/mpi_collective.h under mpirun); nullptr: this process alone. Every
  // rank takes its own micro-batches and applies the same update; rank 0 alone writes output_dir.
  Collective* collective = nullptr;
};

struct TrainResult {
  std::filesystem::path output_dir;
  int64_t steps = 0, total_steps = 0;  // steps: the global step reached (resumed ones included)
  int64_t first_step = 0;               // the step this run started from: 0, or the resumed checkpoint's
  bool tensorboard = false;             // event files were written under output_dir/runs (use_tensorboard)
  int64_t train_samples = 0, val_samples = 0;
  double first_loss = 0, last_loss = 0;  // mean loss per target of this run's first and last step
  std::optional<double> eval_loss;       // last evaluation
  double seconds = 0;                    // the whole command
  double train_seconds = 0;              // optimizer steps (data preparation, evaluation and saving excluded)
  double tokens_per_second = 0;          // trained tokens / train_seconds
  int64_t tokens = 0;                    // trained through the model (padding excluded)
  std::vector<std::string> checkpoints;
  int world_size = 1;
  // Several ranks: seconds this rank spent in the gradient and loss sums, and the part of them the
  // steps waited for (the rest overlapped the backward pass).
  double communication_seconds = 0, communication_waited_seconds = 0;
  // Each rank's resident memory after the last step (before the final save) and its peak over the
  // whole run (rank 0's includes the whole AdamW moments gathered for each ZeRO-1 checkpoint).
  std::vector<int64_t> rss_bytes, peak_rss_bytes;
};

// Throws ConfigError / FileError / ShapeError, or TrainingError when the loss becomes NaN or
// infinite (training stops; the last checkpoint stays the last good one).
TrainResult train_run(const TrainConfig& config, const TrainRunOptions& options);

struct EvaluateRunResult {
  double train_loss = 0, eval_loss = 0;  // mean per target token
  int64_t train_samples = 0, eval_samples = 0;
  double seconds = 0, samples_per_second = 0;
  bool has_eval = false;
  int world_size = 1;
};

// The mean losses of base_model over the config's training and validation splits (the same split
// as `train`), like `axolotl evaluate`. With `collective` (mpirun -np N), the ranks share out the
// micro-batches (train/run_data.h: the same losses as one process) after checking that they read
// the same config, samples and weights (train/rank_agreement.h).
EvaluateRunResult evaluate_run(const TrainConfig& config, Collective* collective = nullptr);

class TrainingError : public Error {
 public:
  using Error::Error;
};

}  // namespace difftx
