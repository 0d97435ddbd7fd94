#include "train/data_stream.h"

namespace difftx {

DataStream::DataStream(const std::vector<Sample>& samples, const TrainConfig& c, int32_t pad, int rank, int world_size)
    : samples_(samples), config_(c), pad_(pad), rank_(rank), world_(world_size) {
  load(0);
  first_epoch_size_ = static_cast<int64_t>(batches_.size());
}

void DataStream::load(uint64_t epoch) {
  epoch_ = epoch;
  index_ = 0;
  batches_ = make_micro_batches(samples_, config_, epoch, pad_, /*shuffle=*/true);
}

void DataStream::seek(int64_t position) {
  load(0);
  position_ = position;
  while (position >= static_cast<int64_t>(batches_.size())) {
    position -= static_cast<int64_t>(batches_.size());
    load(epoch_ + 1);
  }
  index_ = position;
}

const MicroBatch& DataStream::next() {
  for (int k = 0; k < world_; ++k) {
    if (index_ >= static_cast<int64_t>(batches_.size())) load(epoch_ + 1);
    if (k == rank_) current_ = batches_[static_cast<size_t>(index_)];
    ++index_;
  }
  position_ += world_;
  return current_;
}

}  // namespace difftx
