// Standard (softmax) attention with GQA, causal and padding masks, sliding window and a KV cache
// (spec §1). Scores and softmax in float32; scale is given (1/sqrt(d) for every layout).
#pragma once

#include <cstdint>

#include "kernels/op_types.h"

namespace difftx {


// shape: H = n_q_heads, KV = n_k_heads = n_v_heads (query head h reads kv head h / (H / KV)).
// q:   [B, T, H, d], token rows q_stride floats apart (q_stride >= H*d).
// k,v: [B, KV, S_cap, d]; the first S positions of each (batch, kv head) are valid.
// segments: [B, S_cap] segment id of each cached position: 0 = padding (never seen), and a query
// sees only keys of its own segment (document boundaries of packed sequences); nullptr = one
// segment, no padding.
// out: [B, T, H, d], token rows out_stride floats apart.
// Query t sits at cache index i = S - T + t and sees keys s <= i (causal). A query that sees no
// key (e.g. a padding row whose keys are all padding) gets a zero output.
// Extra memory: one [tile, S] score block per thread (linear in S, never S x T per head).
// stats (optional, for the backward): row max m and sum l of exp(score - m), [B, H, T] each;
// a row that sees no key has m = -inf, l = 0.
// products: bf16 rounds the operands of q·k^T and P·v (op_types.h) where query tiles are long
// enough to pack them for (prefill; decoding keeps float32).
void attention_forward(const AttentionShape& shape, const float* q, int64_t q_stride, const float* k, const float* v,
                       const int32_t* segments, float scale, float* out, int64_t out_stride, float* stats_m = nullptr,
                       float* stats_l = nullptr, TileProducts products = TileProducts::f32);

}  // namespace difftx
