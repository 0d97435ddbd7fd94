// A Llama-family causal language model in float32 (spec §1): configuration, the parameter
// table, the weights in one contiguous buffer, and the forward pass with an optional KV cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "io/model_config.h"
#include "model/params.h"

namespace difftx {

class KVCache;

// Pointers into the weight buffer for one decoder layer; nullptr where the config has no such
// parameter (biases, q/k norms).
struct LayerWeights {
  const float* input_norm;                 // [D]
  const float *q_proj, *q_bias;            // [H*d, D], [H*d]
  const float *k_proj, *k_bias;            // [KV*d, D], [KV*d]
  const float *v_proj, *v_bias;            // [KV*d, D], [KV*d]
  const float *o_proj, *o_bias;            // [D, H*d], [D]
  const float *q_norm, *k_norm;            // [d] (qwen3)
  const float* post_norm;                  // [D]
  const float *gate_proj, *gate_bias;      // [I, D], [I]
  const float *up_proj, *up_bias;          // [I, D], [I]
  const float *down_proj, *down_bias;      // [D, I], [D]
};

// A batch of token ids with optional padding and explicit positions.
struct TokenBatch {
  int64_t batch = 1;                   // B
  int64_t seq_len = 0;                 // T
  std::vector<int32_t> ids;            // [B, T]
  std::vector<int64_t> position_ids;   // [B, T]; empty: cache length + t (transformers' default)
  std::vector<uint8_t> attention_mask; // [B, T], 0 = padding; empty: no padding
};

enum class LogitsMode {
  all,   // logits for every position: [B, T, V]
  last,  // only the last position of each row: [B, V] (generation)
};

// The tensors of a Hugging Face Llama-family checkpoint for `config` (names and shapes of spec §1).
ParamTable llama_param_table(const ModelConfig& config);

class Model {
 public:
  // Allocates zeroed weights for the config. Throws ConfigError when they cannot be allocated.
  explicit Model(ModelConfig config);
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  const ModelConfig& config() const { return config_; }
  const ParamTable& table() const { return table_; }
  std::span<float> weights() { return weights_; }
  std::span<const float> weights() const { return weights_; }
  float* param(std::string_view name);              // std::out_of_range when absent
  const float* param(std::string_view name) const;

  // Runs the model on `batch`. With a cache, the batch's tokens are appended to it (and attend to
  // everything cached before); without, the batch is a whole sequence. logits: [B, T, V] or [B, V]
  // (LogitsMode). Throws ShapeError/ConfigError on ids out of range, a batch that does not match
  // the cache, or a cache that is full.
  void forward(const TokenBatch& batch, KVCache* cache, LogitsMode mode, std::vector<float>& logits) const;

 private:
  void bind();
  ModelConfig config_;
  ParamTable table_;
  std::vector<float> weights_;
  const float* embed_ = nullptr;    // [V, D]
  const float* final_norm_ = nullptr;
  const float* lm_head_ = nullptr;  // [V, D]; the embedding when tied
  std::vector<LayerWeights> layers_;
};

}  // namespace difftx
