// diff-v2's paired combine (spec §8; Microsoft's DIFF V2): the ordinary attention outputs of the
// 2H query heads are combined pairwise with a per-token, per-head lambda,
//   out[t, i, :] = a[t, 2i, :] - mix * sigmoid(z[t, i]) * a[t, 2i+1, :],
// where z[t, i] = x_t · lambda_proj[i] and mix is the training warm-up factor (1 at inference).
// Shapes: a [n, 2 * heads, d], z [n, heads], out [n, heads, d] (rows contiguous). sigmoid(z) =
// 1 / (1 + exp(-z)) in float32, so z = 0 gives exactly 1/2.
#pragma once

#include <cstdint>

namespace difftx {

void lambda_combine_forward(const float* a, const float* z, float mix, int64_t n, int64_t heads, int64_t d,
                            float* out);

// The gradients, accumulated (+=): d_a[t, 2i] += d_out[t, i]; d_a[t, 2i+1] += -mix * s * d_out[t, i];
// d_z[t, i] += -mix * s (1 - s) <d_out[t, i], a[t, 2i+1]> with s = sigmoid(z[t, i]).
void lambda_combine_backward(const float* a, const float* z, float mix, const float* d_out, int64_t n, int64_t heads,
                             int64_t d, float* d_a, float* d_z);

}  // namespace difftx
