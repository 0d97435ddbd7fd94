#include "kernels/cpu/linear.h"

#include <cblas.h>

namespace difftx {

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
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, w,
                static_cast<blasint>(k), x, 1, beta, y, 1);
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
