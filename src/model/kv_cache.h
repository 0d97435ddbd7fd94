// Key/value cache for incremental decoding: post-RoPE keys and values of every layer, plus
// which cached positions are padding.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"

namespace difftx {

class KVCache {
 public:
  // Room for `capacity` tokens per row of a batch of `batch` rows.
  // Memory: 2 * L * B * KV * capacity * d floats + B * capacity bytes.
  KVCache(const ModelConfig& config, int64_t batch, int64_t capacity);

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }         // tokens cached so far (S)
  int64_t max_position() const { return max_position_; }  // largest position id cached, -1 if none

  float* keys(int64_t layer) { return keys_.data() + layer * layer_floats_; }      // [B, KV, capacity, d]
  float* values(int64_t layer) { return values_.data() + layer * layer_floats_; }  // [B, KV, capacity, d]
  uint8_t* valid() { return valid_.data(); }                                       // [B, capacity]

  // Called by Model::forward after all layers have written `tokens` new positions.
  void advance(int64_t tokens, int64_t max_position);
  void clear();

 private:
  int64_t batch_, capacity_, length_ = 0, max_position_ = -1;
  int64_t layer_floats_;
  std::vector<float> keys_, values_;
  std::vector<uint8_t> valid_;
};

}  // namespace difftx
