// Dense layers through oneDNN matmul primitives (kernels/cpu/gemm.h: a library's GEMM, not a
// hand-written one); one row (decoding) through a memory-bound matrix-vector loop of our own
// (kernels/cpu/gemv.h), faster than a library's gemv here. Weights may be kept in bfloat16 for
// inference (LinearWeight). precision (gemm.h): f32, or bf16 operands with float32 accumulation
// and output (PyTorch autocast's rule for a Linear layer).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cpu/gemm.h"
#include "kernels/op_types.h"

namespace difftx {

// y[m, n] = x[m, k] · w[n, k]^T (+ bias[n]), or y += that when accumulate.
// w is a PyTorch Linear weight ([out, in], row-major). bias may be nullptr.
// x rows are x_stride floats apart and y rows y_stride apart (defaults: k and n).
void linear_forward(const float* x, int64_t m, int64_t k, const float* w, const float* bias, int64_t n, float* y,
                    bool accumulate = false, int64_t x_stride = 0, int64_t y_stride = 0);


// linear_forward for either storage and precision. f32 precision: bfloat16 weights are widened to
// float32 exactly and the arithmetic stays float32: one row goes through gemv_bf16 (half the bytes
// streamed); several rows widen blocks of at most 2^21 weights into a per-thread buffer and
// multiply them (the widening is O(n·k), the product O(m·n·k)). bf16 precision: x (and float32
// weights) are rounded to bfloat16, bfloat16 weights are used as they are, and the sums are float32;
// one row is rounded and goes through the gemv of its weights' storage.
void linear_forward(const float* x, int64_t m, int64_t k, LinearWeight w, const float* bias, int64_t n, float* y,
                    bool accumulate = false, int64_t x_stride = 0, int64_t y_stride = 0,
                    GemmPrecision precision = GemmPrecision::f32);


// Several Linear layers on the same x[m, k] (q/k/v projections, gate/up). The same as one
// linear_forward per output; for one row (decoding) they run in one parallel region (gemv_many).
void linear_forward_shared_input(const float* x, int64_t m, int64_t k, std::span<const LinearOut> outs,
                                 GemmPrecision precision = GemmPrecision::f32);

// Backward of linear_forward, accumulating (the llm.c pattern):
//   dx[m, k] += dy[m, n] · w[n, k]      (skipped when dx is nullptr)
//   dw[n, k] += dy^T[n, m] · x[m, k]     (skipped when dw is nullptr)
//   db[n]    += sum over rows of dy      (skipped when db is nullptr)
// bf16 precision rounds dy, w and x to bfloat16 for the two products (float32 sums; db is float32).
void linear_backward(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* dy, float* dx,
                     float* dw, float* db, GemmPrecision precision = GemmPrecision::f32);
// The same with w float32 or bfloat16 (a frozen bf16 matrix of LoRA training). With a bf16 w in
// float32 precision, dx takes blocks of w's rows widened to float32 (as linear_forward does), so the
// arithmetic stays float32; dw never needs w.
void linear_backward(const float* x, int64_t m, int64_t k, LinearWeight w, int64_t n, const float* dy, float* dx,
                     float* dw, float* db, GemmPrecision precision = GemmPrecision::f32);

}  // namespace difftx
