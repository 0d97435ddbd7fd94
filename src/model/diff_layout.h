// Which heads the differential layouts pair, and the per-layer lambda (spec §2-§4).
#pragma once

#include <cstdint>

#include "io/model_config.h"
#include "kernels/op_types.h"

namespace difftx {

// Head selection for the fused kernel, G = H / KV:
//   llama-differential, double: H diff-heads; q1 = head i, q2 = head H+i of the doubled q_proj;
//     k1 = kv head i/G, k2 = kv head KV + i/G of the doubled k_proj; value = v head i/G (w = d).
//   llama-differential, split: H/2 diff-heads; q1 = head i, q2 = head H/2+i; k1 = kv head i/G,
//     k2 = kv head KV/2 + i/G; value = [v_(i/G) ; v_((i+H/2)/G)] (w = 2d).
//   diffllama: H/2 diff-heads; q1 = head i, q2 = head i+H/2; k = kv head (query head)/G for both;
//     value = [v_(i/G) ; v_((i+H/2)/G)] (w = 2d).
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
