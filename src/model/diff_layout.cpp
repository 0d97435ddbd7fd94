#include "model/diff_layout.h"

#include <cmath>

namespace difftx {

DiffHeadMap diff_head_map(const ModelConfig& c) {
  const int32_t H = static_cast<int32_t>(c.num_attention_heads), KV = static_cast<int32_t>(c.num_key_value_heads);
  const int32_t G = H / KV;
  DiffHeadMap m;
  if (c.double_heads()) {
    m.value_heads = 1;
    for (int32_t i = 0; i < H; ++i) {
      m.q1.push_back(i);
      m.q2.push_back(H + i);
      m.k1.push_back(i / G);
      m.k2.push_back(KV + i / G);
      m.v.push_back(i / G);
    }
    return m;
  }
  m.value_heads = 2;
  for (int32_t i = 0; i < H / 2; ++i) {
    m.q1.push_back(i);
    m.q2.push_back(H / 2 + i);
    m.k1.push_back(i / G);
    m.k2.push_back(c.layout == AttentionLayout::diffllama ? (i + H / 2) / G : KV / 2 + i / G);
    m.v.push_back(i / G);
    m.v.push_back((i + H / 2) / G);
  }
  return m;
}

float diff_lambda(const float* lq1, const float* lk1, const float* lq2, const float* lk2, int64_t d,
                  float lambda_init) {
  float s1 = 0.0f, s2 = 0.0f;
  for (int64_t i = 0; i < d; ++i) {
    s1 += lq1[i] * lk1[i];
    s2 += lq2[i] * lk2[i];
  }
  return std::exp(s1) - std::exp(s2) + lambda_init;
}

}  // namespace difftx
