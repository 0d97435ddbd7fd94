// Small matrix products on attention tiles (at most 32 queries x 64 keys x head width), shared by
// the attention kernels. Internal to src/kernels/cpu.
//
// For full tiles OpenBLAS is about twice as fast as plain loops (measured, T=512, d=64, 2 threads);
// for a few rows (decoding) its per-call cost inside an OpenMP parallel region dominates
// (measured: 2.5 vs 43 tokens/s decoding SmolLM2-135M), so small tiles use loops the compiler
// vectorises.
#pragma once

#include <cblas.h>

#include <cstdint>

namespace difftx::tiles {

inline constexpr int64_t kBlasMinRows = 8;

// s[r, j] = scale * a_r · b_j for rows r < rows (a rows lda apart) and j < n (b rows ldb apart), over d.
inline void scores(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t rows, int64_t n, int64_t d,
                   float scale, float* s) {
  if (rows >= kBlasMinRows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, scale, a, lda, b, ldb, 0.0f, s, n);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* ar = a + r * lda;
    for (int64_t j = 0; j < n; ++j) {
      const float* bj = b + j * ldb;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t x = 0; x < d; ++x) acc += ar[x] * bj[x];
      s[r * n + j] = acc * scale;
    }
  }
}

// out[r, 0:d] += sum_j p[r, j] * b_j for rows r < rows (out rows ldo apart), j < n (b rows ldb apart).
inline void weighted_rows(const float* p, int64_t rows, int64_t n, const float* b, int64_t ldb, int64_t d, float* out,
                          int64_t ldo) {
  if (rows >= kBlasMinRows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, n, 1.0f, p, n, b, ldb, 1.0f, out, ldo);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * ldo;
    for (int64_t j = 0; j < n; ++j) {
      const float w = p[r * n + j];
      const float* bj = b + j * ldb;
#pragma omp simd
      for (int64_t x = 0; x < d; ++x) o[x] += w * bj[x];
    }
  }
}

// out[j, 0:d] += sum_r p[r, j] * a_r for j < n (out rows ldo apart), r < rows (a rows lda apart).
inline void weighted_rows_transposed(const float* p, int64_t rows, int64_t n, const float* a, int64_t lda, int64_t d,
                                     float* out, int64_t ldo) {
  if (rows >= kBlasMinRows) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, rows, 1.0f, p, n, a, lda, 1.0f, out, ldo);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* ar = a + r * lda;
    for (int64_t j = 0; j < n; ++j) {
      const float w = p[r * n + j];
      float* o = out + j * ldo;
#pragma omp simd
      for (int64_t x = 0; x < d; ++x) o[x] += w * ar[x];
    }
  }
}

}  // namespace difftx::tiles
