// Key/value cache for incremental decoding: post-RoPE keys and values of every layer, plus
// which cached positions are padding.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"

namespace difftx {

class KVCache {
 public:
  // Room for `capacity` tokens per row of a batch of `batch` rows. Keys have 2*KV heads in the
  // llama-differential double mode (both components), KV otherwise; values have KV heads.
  // Memory: L * B * (key heads + KV) * capacity * d floats + B * capacity bytes.
  KVCache(const ModelConfig& config, int64_t batch, int64_t capacity);

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }         // tokens cached so far (S)
  int64_t max_position() const { return max_position_; }  // largest position id cached, -1 if none

  int64_t key_heads() const { return key_heads_; }
  float* keys(int64_t layer) { return keys_.data() + layer * key_floats_; }        // [B, key heads, capacity, d]
  float* values(int64_t layer) { return values_.data() + layer * value_floats_; }  // [B, KV, capacity, d]
  int32_t* segments() { return segments_.data(); }  // [B, capacity]: segment of each position, 0 = padding

  // Called by Model::forward after all layers have written `tokens` new positions.
  void advance(int64_t tokens, int64_t max_position);
  void clear();

 private:
  int64_t batch_, capacity_, length_ = 0, max_position_ = -1;
  int64_t key_heads_, key_floats_, value_floats_;
  std::vector<float> keys_, values_;
  std::vector<int32_t> segments_;
};

}  // namespace difftx
