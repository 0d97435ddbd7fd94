// The layout modules (one file each), for layout.cpp's registry.
#pragma once

#include "model/attention/layout.h"

namespace difftx {

const AttentionLayoutModule& standard_attention();            // standard.cpp (spec §1)
const AttentionLayoutModule& llama_differential_attention();  // llama_differential.cpp (spec §3)
const AttentionLayoutModule& diffllama_attention();           // diffllama.cpp (spec §4)
const AttentionLayoutModule& diff_v1_attention();             // diff_v1.cpp (spec §7)
const AttentionLayoutModule& diff_v2_attention();             // diff_v2.cpp (spec §8)

// The head map of layouts that pair the model's own heads: H/2 diff-heads, G = H / KV; q1 = head i,
// q2 = head H/2 + i; k1 = kv head i/G, k2 = second_kv(i); value = [v_(i/G) ; v_((i+H/2)/G)] (w = 2d).
template <class SecondKv>
DiffHeadMap paired_heads_map(const ModelConfig& c, SecondKv second_kv) {
  const auto H = static_cast<int32_t>(c.num_attention_heads), G = static_cast<int32_t>(c.num_attention_heads / c.num_key_value_heads);
  DiffHeadMap m;
  m.value_heads = 2;
  for (int32_t i = 0; i < H / 2; ++i) {
    m.q1.push_back(i);
    m.q2.push_back(H / 2 + i);
    m.k1.push_back(i / G);
    m.k2.push_back(second_kv(i));
    m.v.push_back(i / G);
    m.v.push_back((i + H / 2) / G);
  }
  return m;
}

// The monitor's statistics of layouts with the four lambda vectors (the seed's keys):
// lambda_{q1,k1,q2,k2}_norm, lambda1 = exp(q1 · k1), lambda2 = exp(q2 · k2) (dots in double),
// lambda_init, lambda_full = lambda1 - lambda2 + lambda_init per layer; aggregated: the four norms,
// lambda1, lambda2 and lambda_full scaled by the warm-up mix when the layout has one.
AttentionLayoutModule::LambdaMetrics lambda_vector_metrics(const AttentionLayoutModule& layout, const ModelConfig& c,
                                                           const LayerWeights& w, int64_t layer, float diff_attn_mix);

// Refuses --init identity for a layout whose per-head norm and (1 - lambda_init) scale make the base
// function unreachable (spec §9), naming the layout's --format.
void refuse_init_identity_with_head_norm(const ConvertOptions& options);

// The four lambda vectors [d] of a differential layer, in checkpoint order (spec §2).
void add_lambda_vectors(ParamTable& table, const ModelConfig& config, const std::string& prefix, int64_t layer);

}  // namespace difftx
