// Backward of softmax attention maps, flash-style: the attention weights are recomputed tile by
// tile from the forward's float32 row statistics (m, l), so memory stays linear in the sequence
// length (per thread: 3 x 36 x S floats of tile buffers and a private copy of dk and dv). One kernel serves standard attention (one map per query head) and differential
// attention (two maps per differential head, spec §2-§4).
//
// A map reads query head q, key head k and value heads v[0..value_heads) (concatenated, width
// w = value_heads * d) and outputs A = P V with P = softmax(scale * q k^T | visible keys). Given
// dA, with delta_t = sum_x dA[t, x] A[t, x]:
//   dV_s += sum_t P[t, s] dA[t],   dP[t, s] = dA[t] · V_s,   dS = P ∘ (dP - delta),
//   dq_t += scale sum_s dS[t, s] k_s,   dk_s += scale sum_t dS[t, s] q_t
// (the standard softmax-attention gradient; Dao, "FlashAttention-2", 2023, Algorithm 2).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/op_types.h"

namespace difftx {

struct AttentionMaps {
  std::vector<int32_t> q, k;  // query head and key head of each map
  std::vector<int32_t> v;     // [maps * value_heads]
  int64_t value_heads = 1;
  int64_t count() const { return static_cast<int64_t>(q.size()); }
};

struct AttentionBackwardArgs {
  const float* q = nullptr;   // [B, T, *, d], token rows q_stride apart
  int64_t q_stride = 0;
  const float* k = nullptr;   // [B, n_k_heads, S_cap, d]
  const float* v = nullptr;   // [B, n_v_heads, S_cap, d]
  const int32_t* segments = nullptr;  // [B, S_cap] as in attention.h, or nullptr
  float scale = 1.0f;
  const float* m = nullptr;   // [B, maps, T] row max of the forward
  const float* l = nullptr;   // [B, maps, T] row sum of exp(score - m)
  const float* out = nullptr;   // [B, T, maps, w]: each map's output A (for delta)
  const float* d_out = nullptr; // [B, T, maps, w]: dA
  float* dq = nullptr;        // like q (rows dq_stride apart), accumulated
  int64_t dq_stride = 0;
  float* dk = nullptr;        // like k, accumulated
  float* dv = nullptr;        // like v, accumulated
  TileProducts products = TileProducts::f32;  // bf16: every tile product's operands rounded (op_types.h)
};

// The arguments of one backward from the forward's inputs, statistics and the gradient outputs.
inline AttentionBackwardArgs backward_args(const float* q, int64_t q_stride, const float* k, const float* v,
                                           const int32_t* segments, float scale, const float* m, const float* l,
                                           const float* out, const float* d_out, const AttentionGrads& grads) {
  AttentionBackwardArgs a;
  a.q = q;
  a.q_stride = q_stride;
  a.k = k;
  a.v = v;
  a.segments = segments;
  a.scale = scale;
  a.m = m;
  a.l = l;
  a.out = out;
  a.d_out = d_out;
  a.dq = grads.dq;
  a.dq_stride = grads.dq_stride;
  a.dk = grads.dk;
  a.dv = grads.dv;
  return a;
}

// Requires that no two maps read the same query head (true for every layout), so dq rows are
// written by one map only. One pass, parallel over (batch, map, query tile) with a static
// schedule; dk and dv are summed per thread and the sums added in thread order, so results are
// the same on every run with the same thread count.
void attention_maps_backward(const AttentionShape& shape, const AttentionMaps& maps,
                             const AttentionBackwardArgs& args);

// For monitoring: sum over keys of P^2 for every row, [B, maps, T], recomputed from the forward's
// statistics (uses q, k, segments, scale, m, l of args). With sum P = 1 for every row that sees a
// key, the mean and variance of all attention weights follow (spec §6, attn_mean / attn_std).
void attention_maps_square_sums(const AttentionShape& shape, const AttentionMaps& maps,
                                const AttentionBackwardArgs& args, float* square_sums);

// Backward of attention_forward (attention.h): one map per query head h reading kv head
// h / (H / KV). q, k, v, segments, shape and scale as given to the forward; m, l: its statistics
// [B, H, T]; out, d_out: [B, T, H, d] contiguous (the forward's output and its gradient).
// Accumulates into grads.dq, dk, dv.
void attention_backward(const AttentionShape& shape, const float* q, int64_t q_stride, const float* k, const float* v,
                        const int32_t* segments, float scale, const float* m, const float* l, const float* out,
                        const float* d_out, const AttentionGrads& grads, TileProducts products = TileProducts::f32);

}  // namespace difftx
