// Backward of diff_attention_forward (kernels/cpu/diff_attention.h; docs/FORMATS.md §2-§4).
//
// Forward, per differential head i and query row: z = A1 - lambda A2, y = norm(z) (an RMSNorm over
// w, with or without weight, or the identity), out = out_scale * y. Given dOut:
//   dz = norm_backward(out_scale * dOut)        (and d_norm_weight += its weight gradient)
//   dA1 = dz,   dA2 = -lambda dz,   dlambda = -sum dz · A2
// and then the softmax-attention gradient of both maps of every head at once
// (attention_maps_backward: maps [0, Hd) the first softmaxes, [Hd, 2Hd) the second, as the
// forward's DiffAttentionStats lay them out), into dq, dk and dv.
//
// Memory: 2 * N * Hd * w floats of working buffers (z, dz; the maps' gradients 2x that), N = B*T.
#pragma once

#include <cstdint>

#include "kernels/op_types.h"

namespace difftx {

// q, k, v, segments, shape, map and params as given to diff_attention_forward (params.lambda the
// effective lambda of the layer), stats as it filled them (m, l and a all required);
// d_out: [B, T, Hd, w] contiguous. Accumulates into grads (dq, dk, dv; d_norm_weight when
// params.norm_weight and it are given) and returns dLoss/dlambda (a sum over every element, in double).
double diff_attention_backward(const AttentionShape& shape, const DiffHeadMap& map,
                               const DiffAttentionParams& params, const float* q, int64_t q_stride, const float* k,
                               const float* v, const int32_t* segments, const DiffAttentionStats& stats,
                               const float* d_out, const AttentionGrads& grads,
                               TileProducts products = TileProducts::f32);

// For the monitor: sum over keys of P^2 for every row of the 2 * Hd maps, [B, 2 * Hd, T] (layout of
// stats.m), recomputed from the forward's statistics (m and l used).
void diff_attention_square_sums(const AttentionShape& shape, const DiffHeadMap& map, float scale, const float* q,
                                int64_t q_stride, const float* k, const int32_t* segments,
                                const DiffAttentionStats& stats, float* square_sums,
                                TileProducts products = TileProducts::f32);

}  // namespace difftx
