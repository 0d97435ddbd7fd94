// What a training forward keeps for the backward pass: the inputs of every operation whose
// backward needs them, per layer. Memory per layer, N = B*T tokens:
//   N * (4 D + (2 QH + KH + KV + H) d + 2 I) floats, plus 2 * N * Hd * w for fused differential
// layers (diff-v2: N * (2H d + H)) and the per-row softmax statistics; linear in T (attention weights and silu(gate) * up are
// recomputed, never stored). With recomputation (ForwardOptions::recompute_activations,
// axolotl's gradient_checkpointing) only x_in is kept per layer, N * D floats, plus the above once
// for the layer being recomputed. Memory model of a training step: bench/NOTES.md.
#pragma once

#include <cstdint>
#include <vector>

namespace difftx {

struct LayerTrace {
  std::vector<float> x_in;          // [N, D] residual stream entering the layer
  std::vector<float> xn1;           // [N, D] input_layernorm output
  std::vector<float> q_lin, k_lin;  // [N, QH*d], [N, KH*d] projections before q_norm / k_norm (qwen3 only)
  std::vector<float> q;             // [N, QH*d] queries after norm and RoPE
  std::vector<float> kc, vc;        // [B, KH, T, d], [B, KV, T, d] keys after RoPE, values
  std::vector<float> att;           // [N, H*d] attention output, o_proj's input
  // Softmax statistics [B, maps, T] (row max m, row sum l): maps = H for standard attention,
  // 2 * Hd for fused differential layers (first maps, then second: kernels/op_types.h
  // DiffAttentionStats), the 2H query heads for diff-v2.
  std::vector<float> m, l;
  // The maps' outputs before the difference: [N, 2 * Hd, w] (fused differential layers) or
  // [N, 2H, d] (diff-v2: the ordinary attention of every query head).
  std::vector<float> a;
  float lambda = 0.0f;              // lambda of the layer (fused differential layers), before mix
  std::vector<float> lambda_logits; // [N, H] x · lambda_proj[i] (diff-v2: lambda = sigmoid of it), before mix
  std::vector<float> h;             // [N, D] residual after the attention block
  std::vector<float> xn2;           // [N, D] post_attention_layernorm output
  std::vector<float> gate, up;      // [N, I] gate and up projections (before silu(gate) * up)
};

struct ForwardTrace {
  int64_t batch = 0, seq_len = 0;
  std::vector<int32_t> ids;         // [B, T]
  std::vector<int32_t> segments;    // [B, T] segment ids (0 = padding), as the attention kernels take them
  std::vector<float> cos, sin;      // [N, d/2] RoPE tables
  std::vector<LayerTrace> layers;   // with recomputation only x_in of each
  LayerTrace work;                  // with recomputation: the activations of the layer in hand
  std::vector<float> x_final;       // [N, D] residual stream before the final norm
  std::vector<float> xnf;           // [N, D] final norm output (lm_head's input)
};

}  // namespace difftx
