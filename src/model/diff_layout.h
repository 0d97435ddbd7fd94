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

}  // namespace difftx
