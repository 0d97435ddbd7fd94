// Dense layers through OpenBLAS cblas_sgemm (DESIGN.md: no hand-written GEMM); one row (decoding)
// through a memory-bound matrix-vector loop of our own, faster than OpenBLAS sgemv here.
#pragma once

#include <cstdint>

namespace difftx {

// y[m, n] = x[m, k] · w[n, k]^T (+ bias[n]), or y += that when accumulate.
// w is a PyTorch Linear weight ([out, in], row-major). bias may be nullptr.
// x rows are x_stride floats apart and y rows y_stride apart (defaults: k and n).
void linear_forward(const float* x, int64_t m, int64_t k, const float* w, const float* bias, int64_t n, float* y,
                    bool accumulate = false, int64_t x_stride = 0, int64_t y_stride = 0);

// Backward of linear_forward, accumulating (the llm.c pattern):
//   dx[m, k] += dy[m, n] · w[n, k]      (skipped when dx is nullptr)
//   dw[n, k] += dy^T[n, m] · x[m, k]     (skipped when dw is nullptr)
//   db[n]    += sum over rows of dy      (skipped when db is nullptr)
void linear_backward(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* dy, float* dx,
                     float* dw, float* db);

}  // namespace difftx
