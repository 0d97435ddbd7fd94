// Key/value cache for incremental decoding: post-RoPE keys and values of every layer, plus
// which cached positions are padding. The buffers belong to a backend (the model's: a KV cache for
// a model on a GPU lives on that GPU).
#pragma once

#include <cstdint>
#include <memory>

#include "io/model_config.h"
#include "kernels/backend.h"

namespace difftx {

class KVCache {
 public:
  // Room for `capacity` tokens per row of a batch of `batch` rows. Keys have 2*KV heads in the
  // llama-differential double mode (both components), KV otherwise; values have KV heads.
  // Memory: L * B * (key heads + KV) * capacity * d floats + B * capacity int32, zeroed.
  // Throws ShapeError when it does not fit in the backend's memory.
  KVCache(const ModelConfig& config, int64_t batch, int64_t capacity,
          std::shared_ptr<Backend> backend = cpu_backend());

  // The bytes a cache of `batch` x `capacity` tokens allocates (keys, values, segment ids).
  static uint64_t bytes(const ModelConfig& config, int64_t batch, int64_t capacity);

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }         // tokens cached so far (S)
  int64_t max_position() const { return max_position_; }  // largest position id cached, -1 if none
  const Backend* backend() const { return backend_.get(); }

  int64_t key_heads() const { return key_heads_; }
  // Backend memory: [B, key heads, capacity, d], [B, KV, capacity, d], [B, capacity] (segment of
  // each position, 0 = padding).
  float* keys(int64_t layer) { return keys_.as<float>() + layer * key_floats_; }
  float* values(int64_t layer) { return values_.as<float>() + layer * value_floats_; }
  int32_t* segments() { return segments_.as<int32_t>(); }

  // Whether every position cached so far is in segment 1 (no padding, no packed documents): the
  // attention then needs no segment mask. Model::forward records each batch's segments.
  bool uniform_segments() const { return uniform_segments_; }
  void note_segments(bool uniform) { uniform_segments_ = uniform_segments_ && uniform; }

  // Called by Model::forward after all layers have written `tokens` new positions.
  void advance(int64_t tokens, int64_t max_position);
  void clear();

 private:
  std::shared_ptr<Backend> backend_;
  int64_t batch_, capacity_, length_ = 0, max_position_ = -1;
  int64_t key_heads_, key_floats_, value_floats_;
  bool uniform_segments_ = true;
  Buffer keys_, values_, segments_;
};

}  // namespace difftx
