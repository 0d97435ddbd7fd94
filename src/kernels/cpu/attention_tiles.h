// Small matrix products on attention tiles (at most 32 queries x the keys they see x head width),
// masking and softmax numerators, shared by the attention kernels. Internal to src/kernels/cpu.
//
// For full tiles OpenBLAS is about twice as fast as plain loops (measured, T=512, d=64, 2 threads);
// for a few rows (decoding) its per-call cost inside an OpenMP parallel region dominates
// (measured: 2.5 vs 43 tokens/s decoding SmolLM2-135M), so small tiles use loops the compiler
// vectorises.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "kernels/cpu/vec_math.h"

namespace difftx::tiles {

inline constexpr int64_t kBlasMinRows = 8;
inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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

// Sets the scores of keys a row may not see to -inf: row r (cache index first_row + r) sees keys
// lo + j with lo + j <= its index, inside the window, and of its own segment. Only the parts that
// can hold such keys are visited: a tile below the diagonal without window or segments has none.
inline void mask_scores(float* scores, int64_t rows, int64_t n, int64_t lo, int64_t first_row, int64_t window,
                        const int32_t* seg) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = scores + r * n;
    const int64_t i = first_row + r;
    const int64_t first = window > 0 ? std::max<int64_t>(lo, i - window + 1) : lo;
    const int64_t last = std::min(i, lo + n - 1);  // keys after it are in the future
    std::fill(row, row + std::clamp<int64_t>(first - lo, 0, n), kNegInf);
    if (last + 1 - lo < n) std::fill(row + std::max<int64_t>(0, last + 1 - lo), row + n, kNegInf);
    if (seg != nullptr)
      for (int64_t s = first; s <= last; ++s)
        if (seg[s] == 0 || seg[s] != seg[i]) row[s - lo] = kNegInf;
  }
}

// Softmax numerators of one row in place: exp(s - max); returns (max, sum); (-inf, 0) when the
// row sees no key (its numerators are then all 0).
inline std::pair<float, float> softmax_numerators(float* row, int64_t n) {
  float mx = kNegInf;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, row[j]);
  if (mx == kNegInf) {
    std::fill(row, row + n, 0.0f);
    return {kNegInf, 0.0f};
  }
  return {mx, vec::exp_shifted_sum(row, n, mx)};
}

}  // namespace difftx::tiles
