#include "kernels/cpu/linear.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/gemv.h"

namespace difftx {

namespace {

// Writes the bias into y (or adds it) so that the product can be accumulated onto it. Returns the
// beta the product needs: 1 when y already holds something to keep.
float put_bias(const float* bias, int64_t m, int64_t n, float* y, int64_t y_stride, bool accumulate) {
  if (bias == nullptr) return accumulate ? 1.0f : 0.0f;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * y_stride + j] = accumulate ? y[i * y_stride + j] + bias[j] : bias[j];
  return 1.0f;
}

void sgemm_nt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, float beta, int64_t x_stride,
              int64_t y_stride) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(x_stride), w, static_cast<blasint>(k), beta, y,
              static_cast<blasint>(y_stride));
}

}  // namespace

void linear_forward(const float* x, int64_t m, int64_t k, const float* w, const float* bias, int64_t n, float* y,
                    bool accumulate, int64_t x_stride, int64_t y_stride) {
  linear_forward(x, m, k, LinearWeight{w, nullptr}, bias, n, y, accumulate, x_stride, y_stride);
}

void linear_forward(const float* x, int64_t m, int64_t k, LinearWeight w, const float* bias, int64_t n, float* y,
                    bool accumulate, int64_t x_stride, int64_t y_stride) {
  if (x_stride == 0) x_stride = k;
  if (y_stride == 0) y_stride = n;
  if (m == 0 || n == 0) return;
  const float beta = put_bias(bias, m, n, y, y_stride, accumulate);
  if (m == 1) {  // one row (decoding): a matrix-vector product, without GEMM's packing of w
    if (w.bf16 != nullptr) gemv_bf16(w.bf16, n, k, x, y, beta != 0.0f);
    else gemv_f32(w.f32, n, k, x, y, beta != 0.0f);
    return;
  }
  if (w.bf16 == nullptr) {
    sgemm_nt(x, m, k, w.f32, n, y, beta, x_stride, y_stride);
    return;
  }
  // Blocks of output columns: widen their weight rows, then one sgemm per block.
  const int64_t block = std::min(n, std::max<int64_t>(16, (int64_t{1} << 21) / std::max<int64_t>(k, 1)));
  thread_local std::vector<float> widened;
  widened.resize(static_cast<size_t>(block * k));
  for (int64_t j0 = 0; j0 < n; j0 += block) {
    const int64_t rows = std::min(block, n - j0);
    bf16_rows_to_f32(w.bf16 + j0 * k, rows, k, widened.data());
    sgemm_nt(x, m, k, widened.data(), rows, y + j0, beta, x_stride, y_stride);
  }
}

void linear_forward_shared_input(const float* x, int64_t m, int64_t k, std::span<const LinearOut> outs) {
  constexpr size_t kMaxJobs = 4;
  if (m != 1 || outs.size() > kMaxJobs) {
    for (const LinearOut& o : outs) linear_forward(x, m, k, o.w, o.bias, o.n, o.y);
    return;
  }
  GemvJob jobs[kMaxJobs];
  for (size_t i = 0; i < outs.size(); ++i) {
    const LinearOut& o = outs[i];
    const bool accumulate = put_bias(o.bias, 1, o.n, o.y, o.n, false) != 0.0f;
    jobs[i] = GemvJob{o.w.f32, o.w.bf16, o.n, k, x, o.y, accumulate};
  }
  gemv_many(jobs, static_cast<int>(outs.size()));
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
