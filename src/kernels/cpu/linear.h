// Dense layers through OpenBLAS cblas_sgemm (DESIGN.md: no hand-written GEMM).
#pragma once

#include <cstdint>

namespace difftx {

// y[m, n] = x[m, k] · w[n, k]^T (+ bias[n]), or y += that when accumulate.
// w is a PyTorch Linear weight ([out, in], row-major). bias may be nullptr.
// x rows are x_stride floats apart and y rows y_stride apart (defaults: k and n).
void linear_forward(const float* x, int64_t m, int64_t k, const float* w, const float* bias, int64_t n, float* y,
                    bool accumulate = false, int64_t x_stride = 0, int64_t y_stride = 0);

}  // namespace difftx
