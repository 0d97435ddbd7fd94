#include "model/diff_layout.h"

#include "model/attention/layout.h"

#include <cmath>

namespace difftx {

DiffHeadMap diff_head_map(const ModelConfig& c) { return layout_module(c).head_map(c); }

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

void diff_lambda_backward(const float* lq1, const float* lk1, const float* lq2, const float* lk2, int64_t d,
                          float d_lambda, float* g_q1, float* g_k1, float* g_q2, float* g_k2) {
  const DiffLambdaParts parts = diff_lambda_parts(lq1, lk1, lq2, lk2, d, 0.0f);
  const float e1 = std::exp(parts.dot1) * d_lambda, e2 = -std::exp(parts.dot2) * d_lambda;
  for (int64_t i = 0; i < d; ++i) {
    g_q1[i] += e1 * lk1[i];
    g_k1[i] += e1 * lq1[i];
    g_q2[i] += e2 * lk2[i];
    g_k2[i] += e2 * lq2[i];
  }
}

}  // namespace difftx
