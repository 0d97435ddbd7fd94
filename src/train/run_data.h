// What `train` and `evaluate` both read from an axolotl config: the tokenizer, the samples of the
// training and validation splits (dataset.h), the pad id; and the mean loss over a split.
#pragma once

#include <optional>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "config/train_config.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/batches.h"
#include "train/dataset.h"

namespace difftx {

struct Prepared {
  std::filesystem::path model_dir, tokenizer_dir;
  Tokenizer tokenizer;
  std::vector<Sample> train, val;
  DatasetReport report;
  int32_t pad_id = 0;
};

// Resolves base_model / tokenizer_config, checks special_tokens, loads and splits the samples
// (warning about characters the tokenizer dropped). Throws ConfigError / FileError.
Prepared prepare_run_data(const TrainConfig& config);

// Warns when samples are longer than the model's max_position_embeddings (their positions count from 0).
void warn_beyond_max_positions(const Prepared& data, int64_t max_positions);

// Mean loss per target of the micro-batches (no gradients). NumericError naming the micro-batch and
// `split` when a loss is not finite; NaN when there are no targets.
double mean_loss(const Model& model, const std::vector<MicroBatch>& batches, const char* split,
                 const ForwardOptions& options = {});

// The same, stopping early when Ctrl-C / SIGTERM arrives (common/interrupt.h, polled before each
// micro-batch): std::nullopt then, with `done` (when given) set to the micro-batches evaluated.
std::optional<double> mean_loss_unless_interrupted(const Model& model, const std::vector<MicroBatch>& batches,
                                                   const char* split, const ForwardOptions& options = {},
                                                   size_t* done = nullptr);

}  // namespace difftx
