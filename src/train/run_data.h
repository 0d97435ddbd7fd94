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
#include "train/collective.h"
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

// Mean loss per target of the micro-batches (no gradients; NaN when they have no targets), shared
// out over data-parallel ranks (train/collective.h; SingleProcess: all of them here): rank r of W evaluates the
// micro-batches r, r + W, r + 2W, ... (every rank holds the same list), and one sum of the
// per-micro-batch losses gives every rank the same value, bit for bit the one a single process
// adds up in micro-batch order. With `interruptible`, each rank polls Ctrl-C / SIGTERM
// (common/interrupt.h) before each of its micro-batches; a stop on any rank gives std::nullopt on
// every rank, with `done` (when given) set to the micro-batches the ranks evaluated together. A
// loss that is not finite throws the same RanksAgreeNumericError on every rank (the first such
// micro-batch in the list's order, as one process reports it). One collective call per use: every
// rank must call it with the same list.
std::optional<double> mean_loss_over_ranks(const Model& model, const std::vector<MicroBatch>& batches,
                                           const char* split, const ForwardOptions& options, Collective& collective,
                                           bool interruptible, size_t* done = nullptr);

}  // namespace difftx
