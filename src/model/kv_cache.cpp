#include "model/kv_cache.h"

#include <algorithm>

#include "common/error.h"

namespace difftx {

uint64_t KVCache::bytes(const ModelConfig& c, int64_t batch, int64_t capacity) {
  const auto tokens = static_cast<uint64_t>(batch) * static_cast<uint64_t>(capacity);
  const auto heads = static_cast<uint64_t>(c.k_proj_rows() / c.head_dim + c.num_key_value_heads);
  return tokens * (heads * static_cast<uint64_t>(c.head_dim) * static_cast<uint64_t>(c.num_hidden_layers) *
                       sizeof(float) +
                   sizeof(int32_t));
}

KVCache::KVCache(const ModelConfig& c, int64_t batch, int64_t capacity, std::shared_ptr<Backend> backend)
    : backend_(std::move(backend)), batch_(batch), capacity_(capacity) {
  if (batch <= 0 || capacity <= 0) fail<ShapeError>("KV cache needs a positive batch and capacity, got {} and {}", batch, capacity);
  key_heads_ = c.k_proj_rows() / c.head_dim;
  key_floats_ = batch * key_heads_ * capacity * c.head_dim;
  value_floats_ = batch * c.num_key_value_heads * capacity * c.head_dim;
  try {
    keys_ = backend_->alloc_zeroed(sizeof(float) * static_cast<size_t>(key_floats_ * c.num_hidden_layers));
    values_ = backend_->alloc_zeroed(sizeof(float) * static_cast<size_t>(value_floats_ * c.num_hidden_layers));
    segments_ = backend_->alloc_zeroed(sizeof(int32_t) * static_cast<size_t>(batch * capacity));
  } catch (const DeviceError&) {
    fail<ShapeError>("a KV cache for {} rows x {} tokens does not fit in memory ({})", batch, capacity,
                     backend_->name());
  }
}

void KVCache::advance(int64_t tokens, int64_t max_position) {
  length_ += tokens;
  max_position_ = std::max(max_position_, max_position);
}

void KVCache::clear() {
  length_ = 0;
  max_position_ = -1;
  uniform_segments_ = true;
  backend_->zero(segments_.as<void>(), segments_.bytes());
}

}  // namespace difftx
