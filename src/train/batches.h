// Micro-batches of one epoch: the samples in a seeded order (seed + epoch), either padded to the
// longest of each micro-batch (to sequence_len with pad_to_sequence_len), right side, or packed
// several to a row up to sequence_len (sample_packing): each packed sample is its own segment
// (attention never crosses it), positions restart at 0, and the last token of a sample predicts
// nothing. Targets are next-token ids, kIgnoreIndex where the label says so or past the end.
#pragma once

#include <cstdint>
#include <vector>

#include "config/train_config.h"
#include "model/model.h"
#include "train/dataset.h"

namespace difftx {

struct MicroBatch {
  TokenBatch tokens;            // ids, attention_mask, position_ids, segment_ids
  std::vector<int32_t> targets; // [B, T]
  int64_t target_count = 0;     // positions that count
  int64_t samples = 0;
};

// shuffle: false keeps the samples' order (evaluation).
std::vector<MicroBatch> make_micro_batches(const std::vector<Sample>& samples, const TrainConfig& config,
                                           uint64_t epoch, int32_t pad_id, bool shuffle);

}  // namespace difftx
