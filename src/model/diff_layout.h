// Which heads the differential layouts pair, and the per-layer lambda (spec §2-§4).
#pragma once

#include <cstdint>

#include "io/model_config.h"
#include "kernels/op_types.h"

namespace difftx {

// Head selection for the fused kernel: the layout module's head map (model/attention/).
DiffHeadMap diff_head_map(const ModelConfig& config);

// lambda = exp(sum(lambda_q1 * lambda_k1)) - exp(sum(lambda_q2 * lambda_k2)) + lambda_init, in float32,
// with its two exponents (float32 exp overflows to infinity past ~88.72).
struct DiffLambdaParts {
  float dot1 = 0, dot2 = 0;  // lambda_q1 · lambda_k1, lambda_q2 · lambda_k2
  float lambda = 0;
};
DiffLambdaParts diff_lambda_parts(const float* lambda_q1, const float* lambda_k1, const float* lambda_q2,
                                  const float* lambda_k2, int64_t d, float lambda_init);
float diff_lambda(const float* lambda_q1, const float* lambda_k1, const float* lambda_q2, const float* lambda_k2,
                  int64_t d, float lambda_init);

// The gradient of lambda with respect to its four vectors, accumulated into g_*, given
// d_lambda = dLoss/dlambda: d lambda_q1 += exp(dot1) d_lambda lambda_k1, d lambda_k1 += exp(dot1)
// d_lambda lambda_q1, and the same with -exp(dot2) for the second pair (lambda_init is a constant).
void diff_lambda_backward(const float* lambda_q1, const float* lambda_k1, const float* lambda_q2,
                          const float* lambda_k2, int64_t d, float d_lambda, float* g_q1, float* g_k1, float* g_q2,
                          float* g_k2);

}  // namespace difftx
