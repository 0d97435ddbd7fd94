// Memory-bound matrix-vector products for one row of activations (decoding): each thread streams
// blocks of weight rows once, several long runs of rows in step (x stays in L1). Faster here than
// OpenBLAS's sgemv (bench/NOTES.md, changes 6, 17 and 25).
#pragma once

#include <cstdint>

namespace difftx {

// y[r] = w_r · x for r < n (y[r] += w_r · x when accumulate). w: [n, k] row-major float32, x: [k].
void gemv_f32(const float* w, int64_t n, int64_t k, const float* x, float* y, bool accumulate);

// The same with w in bfloat16 (the upper 16 bits of a float32). Each weight is widened to float32
// exactly and the arithmetic is float32, so the result equals gemv_f32 on the widened matrix up to
// summation order. Uses AVX-512F when the build targets it, otherwise the portable loop below.
void gemv_bf16(const uint16_t* w, int64_t n, int64_t k, const float* x, float* y, bool accumulate);

// The portable loop gemv_bf16 falls back to (exposed so tests check it on any CPU).
void gemv_bf16_portable(const uint16_t* w, int64_t n, int64_t k, const float* x, float* y, bool accumulate);

// One matrix-vector product of a batch for gemv_many: w_f32 or w_bf16 (exactly one set), [n, k].
struct GemvJob {
  const float* w_f32 = nullptr;
  const uint16_t* w_bf16 = nullptr;
  int64_t n = 0, k = 0;
  const float* x = nullptr;  // [k]
  float* y = nullptr;        // [n]
  bool accumulate = false;
};

// The jobs' products in one parallel region: their blocks of rows are numbered one after
// another and shared out over the threads. Same results as one gemv_f32 / gemv_bf16 per job
// with fewer thread hand-offs (decoding: q, k, v together; gate and up together). Up to 8 jobs
// share one region; more run as several.
void gemv_many(const GemvJob* jobs, int count);

// dst[r, :] = float32(src[r, :]) for rows [0, rows) of k columns, in parallel.
void bf16_rows_to_f32(const uint16_t* src, int64_t rows, int64_t k, float* dst);

}  // namespace difftx
