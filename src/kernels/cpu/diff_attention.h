// Fused differential attention, forward (spec §2-§4; Ye et al., arXiv 2410.05258, §2.1).
//
// For each diff-head i, two softmax maps over the same keys' positions:
//   A1 = softmax(q1_i k1^T * scale) V_i,   A2 = softmax(q2_i k2^T * scale) V_i
//   out_i = out_scale * norm(A1 - lambda * A2)
// computed online (flash-style) for tiles of 36 queries over tiles of 256 keys, with float32
// running max and sum per row (a vectorised exp), each value tile used by both maps while it is
// in cache. V_i is one value head (width w = d) or the concatenation of two (w = 2d). `norm` is
// an RMSNorm over w, with or without a weight.
// Which q/k/v heads each diff-head reads is given by a DiffHeadMap, so one kernel serves the
// layouts llama-differential (double, split) and diffllama (see model/diff_layout.h).
// Extra memory: O(tile * (key tile + w)) floats per thread, whatever the sequence length.
#pragma once

#include <cstdint>
#include <vector>

namespace difftx {

struct DiffAttentionShape {
  int64_t batch = 1;         // B
  int64_t q_len = 0;         // T: queries, the newest T positions of the cache
  int64_t kv_len = 0;        // S: cached positions, this step's included
  int64_t kv_capacity = 0;   // S_cap
  int64_t n_q_heads = 0;     // heads in a q row (q_stride >= n_q_heads * d)
  int64_t n_k_heads = 0;     // heads in the key cache
  int64_t n_v_heads = 0;     // heads in the value cache
  int64_t head_dim = 0;      // d
  int64_t window = 0;        // sliding window (0 = off), as in attention.h
};

// Head selection per diff-head i (all vectors have one entry per diff-head, v has value_heads).
struct DiffHeadMap {
  std::vector<int32_t> q1, q2;  // q head of each component
  std::vector<int32_t> k1, k2;  // key head of each component
  std::vector<int32_t> v;       // [n_diff_heads * value_heads]: value heads, concatenated in order
  int64_t value_heads = 1;      // 1 (w = d) or 2 (w = 2d)
  int64_t n_diff_heads() const { return static_cast<int64_t>(q1.size()); }
};

struct DiffAttentionParams {
  float scale = 1.0f;                  // 1/sqrt(d)
  float lambda = 0.0f;                 // lambda_eff of the layer (mix * lambda for llama-differential)
  bool norm = false;                   // RMSNorm over w after the difference
  const float* norm_weight = nullptr;  // [w], or nullptr for a norm without weight (diffllama)
  float norm_eps = 1e-6f;
  float out_scale = 1.0f;              // 1, or (1 - lambda_init) for diffllama
};

// Per-row softmax statistics, float32, [B, n_diff_heads, T] each: running max m and sum l of
// exp(score - m) of each map (for the backward pass and monitoring). A row that sees no key has
// m = -inf and l = 0, and its map contributes zeros.
struct DiffAttentionStats {
  float *m1 = nullptr, *l1 = nullptr, *m2 = nullptr, *l2 = nullptr;
  // Optional: the two maps' outputs A1, A2 before the difference, [B, T, n_diff_heads, w] each.
  float *a1 = nullptr, *a2 = nullptr;
};

// q:   [B, T, n_q_heads, d], token rows q_stride floats apart.
// k:   [B, n_k_heads, S_cap, d]; v: [B, n_v_heads, S_cap, d]; segments: [B, S_cap] as in attention.h, or nullptr.
// out: [B, T, n_diff_heads, w], token rows out_stride floats apart (out_stride >= n_diff_heads * w).
// Query t sits at cache index S - T + t and sees keys s <= that index (and within the window).
// stats may be nullptr.
void diff_attention_forward(const DiffAttentionShape& shape, const DiffHeadMap& map, const DiffAttentionParams& params,
                            const float* q, int64_t q_stride, const float* k, const float* v, const int32_t* segments,
                            float* out, int64_t out_stride, const DiffAttentionStats* stats = nullptr);

}  // namespace difftx
