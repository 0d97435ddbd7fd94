#include "kernels/cpu/linear.h"

#include <cblas.h>

namespace difftx {

namespace {

// y[r] = w_r · x (+ y[r] when accumulate) for r < n, w [n, k] row-major. Memory-bound: each
// thread streams a contiguous block of rows once; four rows share every load of x. Used for one
// row (decoding), where OpenBLAS's sgemv reached 37.6 GB/s of the 60 GB/s triad (bench/NOTES.md).
void gemv_rows(const float* w, int64_t n, int64_t k, const float* x, float* y, bool accumulate) {
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n * k >= 65536)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t r0 = blk * 4;
    if (r0 + 4 <= n) {
      const float* w0 = w + r0 * k;
      const float *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (int64_t j = 0; j < k; ++j) {
        const float xv = x[j];
        a0 += w0[j] * xv;
        a1 += w1[j] * xv;
        a2 += w2[j] * xv;
        a3 += w3[j] * xv;
      }
      const float sums[4] = {a0, a1, a2, a3};
      for (int64_t r = 0; r < 4; ++r) y[r0 + r] = accumulate ? y[r0 + r] + sums[r] : sums[r];
    } else {
      for (int64_t r = r0; r < n; ++r) {
        const float* wr = w + r * k;
        float a = 0.0f;
#pragma omp simd reduction(+ : a)
        for (int64_t j = 0; j < k; ++j) a += wr[j] * x[j];
        y[r] = accumulate ? y[r] + a : a;
      }
    }
  }
}

}  // namespace

void linear_forward(const float* x, int64_t m, int64_t k, const float* w, const float* bias, int64_t n, float* y,
                    bool accumulate, int64_t x_stride, int64_t y_stride) {
  if (x_stride == 0) x_stride = k;
  if (y_stride == 0) y_stride = n;
  if (m == 0 || n == 0) return;
  float beta = accumulate ? 1.0f : 0.0f;
  if (bias != nullptr) {
    // Put the bias in first and accumulate the product onto it.
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) y[i * y_stride + j] = bias[j];
    } else {
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) y[i * y_stride + j] += bias[j];
    }
    beta = 1.0f;
  }
  if (m == 1) {  // one row (decoding): a matrix-vector product, without GEMM's packing of w
    gemv_rows(w, n, k, x, y, beta != 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(x_stride), w, static_cast<blasint>(k), beta, y,
              static_cast<blasint>(y_stride));
}

void linear_backward(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* dy, float* dx,
                     float* dw, float* db) {
  if (m == 0) return;
  const auto M = static_cast<blasint>(m), K = static_cast<blasint>(k), N = static_cast<blasint>(n);
  if (dx != nullptr)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dy, N, w, K, 1.0f, dx, K);
  if (dw != nullptr)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);
  if (db != nullptr)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) db[j] += dy[i * n + j];
}

}  // namespace difftx
