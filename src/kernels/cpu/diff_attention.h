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

#include "kernels/op_types.h"

namespace difftx {

// q:   [B, T, n_q_heads, d], token rows q_stride floats apart.
// k:   [B, n_k_heads, S_cap, d]; v: [B, n_v_heads, S_cap, d]; segments: [B, S_cap] as in attention.h, or nullptr.
// out: [B, T, n_diff_heads, w], token rows out_stride floats apart (out_stride >= n_diff_heads * w).
// Query t sits at cache index S - T + t and sees keys s <= that index (and within the window).
// stats may be nullptr. products: bf16 rounds the operands of q·k^T and P·v (op_types.h) where query
// tiles are long enough to pack them for (prefill; decoding keeps float32).
void diff_attention_forward(const AttentionShape& shape, const DiffHeadMap& map, const DiffAttentionParams& params,
                            const float* q, int64_t q_stride, const float* k, const float* v, const int32_t* segments,
                            float* out, int64_t out_stride, const DiffAttentionStats* stats = nullptr,
                            TileProducts products = TileProducts::f32);

}  // namespace difftx
