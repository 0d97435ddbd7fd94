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

DiffLambdaParts diff_lambda_parts(const float* lq1, const float* lk1, const float* lq2, const float* lk2, int64_t d,
                                  float lambda_init) {
  DiffLambdaParts p;
  for (int64_t i = 0; i < d; ++i) {
    p.dot1 += lq1[i] * lk1[i];
    p.dot2 += lq2[i] * lk2[i];
  }
  p.lambda = std::exp(p.dot1) - std::exp(p.dot2) + lambda_init;
  return p;
}

float diff_lambda(const float* lq1, const float* lk1, const float* lq2, const float* lk2, int64_t d,
                  float lambda_init) {
  return diff_lambda_parts(lq1, lk1, lq2, lk2, d, lambda_init).lambda;
}

}  // namespace difftx
