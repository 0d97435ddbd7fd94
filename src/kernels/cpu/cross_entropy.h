// Cross-entropy of next-token logits with ignored positions (transformers' -100 labels).
#pragma once

#include <cstdint>

#include "kernels/op_types.h"  // kIgnoreIndex

namespace difftx {

// logits: [rows, V]; targets: [rows], kIgnoreIndex for rows that do not count.
// Returns the sum over counted rows of -log softmax(logits)[target], in double.
// When want_grad, logits are overwritten by grad_scale * (softmax - onehot(target)) for counted
// rows and 0 for ignored rows (grad_scale is 1 / counted rows of the whole batch for a mean).
// Max and exponentials in float32, their sum in double.
double cross_entropy_forward_backward(float* logits, const int32_t* targets, int64_t rows, int64_t V, float grad_scale,
                                      bool want_grad);

// -log softmax(row)[target] for one row of V logits, computed as above (evaluation).
double token_nll(const float* row, int64_t V, int32_t target);

}  // namespace difftx
