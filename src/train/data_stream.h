// The training data in epoch order, reproducible from (seed, position), for one data-parallel rank.
// Micro-batches are numbered globally from the start of training; rank r of world_size ranks takes
// the global micro-batches r, r + world_size, r + 2 world_size, ... (one process: all of them), so
// that a step of gradient_accumulation_steps micro-batches per rank covers world_size times as many
// (the effective batch grows with the world size, as with accelerate/torchrun).
#pragma once

#include <cstdint>
#include <vector>

#include "config/train_config.h"
#include "train/batches.h"
#include "train/dataset.h"

namespace difftx {

class DataStream {
 public:
  DataStream(const std::vector<Sample>& samples, const TrainConfig& config, int32_t pad_id, int rank = 0,
             int world_size = 1);
  // Continues at global micro-batch `position` (counted from the start of training).
  void seek(int64_t position);
  // This rank's next micro-batch (valid until the next call).
  const MicroBatch& next();
  // Global micro-batches consumed by all ranks so far (the data position a checkpoint stores).
  int64_t position() const { return position_; }
  // Fractional epoch of the next global micro-batch.
  double epoch() const { return static_cast<double>(epoch_) + static_cast<double>(index_) / batches_.size(); }
  // Micro-batches in the first epoch (packing in another order can change the count slightly).
  int64_t epoch_size() const { return first_epoch_size_; }

 private:
  void load(uint64_t epoch);
  const std::vector<Sample>& samples_;
  const TrainConfig& config_;
  int32_t pad_;
  int rank_, world_;
  int64_t position_ = 0;
  uint64_t epoch_ = 0;  // the epoch in batches_
  int64_t index_ = 0;   // the next global micro-batch's index in batches_
  int64_t first_epoch_size_ = 0;
  std::vector<MicroBatch> batches_;
  MicroBatch current_;  // this rank's micro-batch (a copy: the epoch may be reloaded after it)
};

}  // namespace difftx
