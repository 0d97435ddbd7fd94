// Checks of a differential model beyond its stored weights: the derived per-layer lambda (spec
// §2, which can be infinite while every stored tensor is finite), and negative components whose
// gradients are exactly zero, so that training can never move them (--zero-init).
// Both read host float32 weights (a model as loaded or being trained, not placed on a device).
#pragma once

#include <string>

#include "model/model.h"

namespace difftx {

// "" when every layer's lambda is finite (always, for a standard model); otherwise a sentence naming
// the first bad layer, its lambda, the exponent that overflowed float32 exp (past ~88.72) and the
// tensors it comes from, e.g. "layer 3: lambda = exp(lambda_q1 · lambda_k1) - exp(lambda_q2 ·
// lambda_k2) + lambda_init is inf (lambda_q1 · lambda_k1 = 95.1 overflows float32 exp) from
// model.layers.3.self_attn.lambda_q1, lambda_k1, lambda_q2, lambda_k2".
std::string non_finite_lambda(const Model& model);

// "" when nothing is stuck; otherwise a warning naming the layers and why their negative component
// can never train. Per layer, the gradients are exactly zero (so AdamW with weight decay leaves them
// at zero) for:
//   (a) the lambda vectors, when lambda_q1 = lambda_k1 = 0 and lambda_q2 = lambda_k2 = 0
//       (d lambda / d lambda_q1 = exp(lambda_q1 · lambda_k1) lambda_k1, and so on): lambda stays
//       lambda_init; with lambda_init = 0 too, lambda = 0 and the negative map gets no gradient at all;
//   (b) the negative q/k rows of double mode, when those rows (and their biases) are all zero in both
//       q_proj and k_proj: every negative score is 0, d score / d q2 = k2 = 0 and d score / d k2 = q2 = 0,
//       so the negative map stays uniform.
std::string stuck_negative_component(const Model& model);

}  // namespace difftx
