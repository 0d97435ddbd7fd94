// The attention weights of one decoder layer over one sequence, as T x T matrices per head, for
// pictures and inspection (`difftx attention-map`). The fused kernels never form them; these are
// recomputed naively, in double precision, from the queries (after norm and RoPE) and keys that a
// traced forward pass kept, with the kernels' masks (causal; key j visible to query i only if
// i - j < sliding_window when set). Memory: heads.size() * 3 * T^2 floats.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"

namespace difftx {

struct HeadMaps {
  int64_t head = 0;  // diff-head (differential layouts: output head) or query head (standard)
  // [T, T] row-major, row i = query position i, zero where a key is not visible. A differential
  // head: A1 (the positive map); a standard head: its softmax map. Each row sums to 1.
  std::vector<float> positive;
  std::vector<float> negative;    // [T, T] A2, the negative map (differential layouts; else empty)
  std::vector<float> difference;  // [T, T] A1 - lambda_i * A2 (differential; else empty): row i sums to 1 - lambda_i
  std::vector<float> lambda;      // [T] lambda of each query row (one value for per-layer layouts; diff-v2:
                                  // sigmoid(x_i · lambda_proj[head])); empty for a standard head
};

struct AttentionMaps {
  int64_t layer = 0, seq_len = 0;
  bool differential = false;
  std::vector<HeadMaps> heads;
};

// How many heads `attention_maps` can show in a layer: the diff-heads of a differential layout
// (diff-v2: H output heads), the query heads of a standard one.
int64_t attention_map_head_count(const ModelConfig& config);

// Runs `model` (float32 weights on the CPU backend) on `ids` with a trace and returns the maps of
// `layer` for `heads` (empty: every head). Throws ConfigError when the layer or a head is out of
// range (naming the range), ShapeError when ids are empty or more than `max_tokens` (0: no limit;
// the CLI passes max_position_embeddings).
AttentionMaps attention_maps(const Model& model, std::span<const int32_t> ids, int64_t layer,
                             const std::vector<int64_t>& heads, int64_t max_tokens);

}  // namespace difftx
