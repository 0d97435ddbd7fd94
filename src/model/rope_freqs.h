// RoPE frequencies for a config (spec §1), with transformers' rope_scaling types:
//   default  inv_freq[i] = theta^(-2i/d), i < d/2
//   linear   inv_freq / factor
//   dynamic  NTK: when seq_len > max_position_embeddings,
//            theta' = theta * (factor * seq_len / max_pos - (factor - 1))^(d / (d - 2))
//   llama3   per-frequency blend by wavelength (Llama 3.1 recipe: factor, low/high_freq_factor,
//            original_max_position_embeddings)
//   yarn     ramp between interpolated (inv_freq / factor) and original frequencies over the
//            correction range from beta_fast/beta_slow; cos and sin scaled by attention_factor
//            (default 0.1 * ln(factor) + 1, or the mscale / mscale_all_dim ratio).
// Computed in double, stored as float32. Angles are formed as float32 products
// position * inv_freq, as transformers does, then cos/sin are evaluated and rounded to float32.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"

namespace difftx {

struct RopeFreqs {
  std::vector<float> inv_freq;  // [d/2]
  float attention_factor = 1.0f;
};

// seq_len: the longest sequence the current forward covers (max position id + 1); only the
// dynamic type uses it.
RopeFreqs rope_freqs(const ModelConfig& config, int64_t seq_len);

// cos, sin: [n, d/2] for the n positions given (multiplied by attention_factor).
void rope_cos_sin(const RopeFreqs& freqs, const int64_t* positions, int64_t n, float* cos, float* sin);

}  // namespace difftx
