// RMSNorm (spec §1): out = weight * x / sqrt(mean(x^2) + eps), statistics in float32.
#pragma once

#include <cstdint>

namespace difftx {

// x, out: [rows, dim] contiguous (out may alias x); weight: [dim] or nullptr (no learned weight).
void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps);

}  // namespace difftx
