// Dense layers through OpenBLAS cblas_sgemm (a library's GEMM, not a hand-written one); one row (decoding)
// through a memory-bound matrix-vector loop of our own (kernels/cpu/gemv.h), faster than OpenBLAS
// sgemv here. Weights may be kept in bfloat16 for inference (LinearWeight).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/op_types.h"

namespace difftx {

// y[m, n] = x[m, k] · w[n, k]^T (+ bias[n]), or y += that when accumulate.
// w is a PyTorch Linear weight ([out, in], row-major). bias may be nullptr.
// x rows are x_stride floats apart and y rows y_stride apart (defaults: k and n).
void linear_forward(const float* x, int64_t m, int64_t k, const float* w, const float* bias, int64_t n, float* y,
                    bool accumulate = false, int64_t x_stride = 0, int64_t y_stride = 0);


// linear_forward for either storage. bfloat16 weights are widened to float32 exactly and the
// arithmetic stays float32: one row goes through gemv_bf16 (half the bytes streamed); several rows
// widen blocks of at most 2^21 weights into a per-thread buffer and call sgemm on them (the
// widening is O(n·k), the product O(m·n·k)).
void linear_forward(const float* x, int64_t m, int64_t k, LinearWeight w, const float* bias, int64_t n, float* y,
                    bool accumulate = false, int64_t x_stride = 0, int64_t y_stride = 0);


// Several Linear layers on the same x[m, k] (q/k/v projections, gate/up). The same as one
// linear_forward per output; for one row (decoding) they run in one parallel region (gemv_many).
void linear_forward_shared_input(const float* x, int64_t m, int64_t k, std::span<const LinearOut> outs);

// Backward of linear_forward, accumulating (the llm.c pattern):
//   dx[m, k] += dy[m, n] · w[n, k]      (skipped when dx is nullptr)
//   dw[n, k] += dy^T[n, m] · x[m, k]     (skipped when dw is nullptr)
//   db[n]    += sum over rows of dy      (skipped when db is nullptr)
void linear_backward(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* dy, float* dx,
                     float* dw, float* db);

}  // namespace difftx
