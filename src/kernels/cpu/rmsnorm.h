// RMSNorm (spec §1): out = weight * x / sqrt(mean(x^2) + eps), statistics in float32.
#pragma once

#include <cstdint>

namespace difftx {

// x, out: [rows, dim] contiguous (out may alias x); weight: [dim] or nullptr (no learned weight).
void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps);

// Backward, accumulating. With r = 1/sqrt(mean(x^2) + eps) and g = weight * dy (dy when no weight):
//   dx += r * g - x * r^3 * sum(g * x) / dim
//   dweight += sum over rows of dy * x * r      (when weight and dweight are given)
// dx must not alias x or dy.
void rmsnorm_backward(float* dx, float* dweight, const float* dy, const float* x, const float* weight, int64_t rows,
                      int64_t dim, float eps);

}  // namespace difftx
