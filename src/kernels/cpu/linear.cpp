#include "kernels/cpu/linear.h"

#include <algorithm>
#include <vector>

#include "common/bf16.h"
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

// The storage a product of `precision` reads when w has both (a float32 matrix and its bf16 copy,
// Model::keep_bf16_weight_copies): bf16 products the copy, float32 ones the float32 matrix.
LinearWeight for_precision(LinearWeight w, GemmPrecision precision) {
  if (w.f32 == nullptr || w.bf16 == nullptr) return w;
  return precision == GemmPrecision::bf16 ? LinearWeight{nullptr, w.bf16} : LinearWeight{w.f32, nullptr};
}

// The bf16 products of linear_backward: dy rounded once for both; w as bf16 (w16), or rounded from
// float32 w when w16 is nullptr.
void backward_bf16(const float* x, int64_t m, int64_t k, const float* w, const uint16_t* w16, int64_t n,
                   const float* dy, float* dx, float* dw) {
  thread_local std::vector<uint16_t> dy16, other16;
  round_to_bf16(dy, m, n, n, dy16);
  if (dx != nullptr) {
    if (w16 == nullptr) {
      round_to_bf16(w, n, k, k, other16);
      w16 = other16.data();
    }
    gemm(GemmMatrix{nullptr, dy16.data(), n, false}, GemmMatrix{nullptr, w16, k, false}, m, k, n, dx, k, true,
         GemmPrecision::bf16);
  }
  if (dw != nullptr) {
    round_to_bf16(x, m, k, k, other16);
    gemm(GemmMatrix{nullptr, dy16.data(), n, true}, GemmMatrix{nullptr, other16.data(), k, false}, n, k, m, dw, k,
         true, GemmPrecision::bf16);
  }
}

void add_bias_grad(const float* dy, int64_t m, int64_t n, float* db) {
  if (db == nullptr) return;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) db[j] += dy[i * n + j];
}

// Float32 arithmetic on a bf16 matrix w [n, k]: product(j0, rows, widened) for blocks of at most
// 2^21 / k rows j0..j0+rows, each widened exactly into a per-thread float32 buffer.
template <class F>
void widened_blocks(const uint16_t* w, int64_t n, int64_t k, F&& product) {
  const int64_t block = std::min(n, std::max<int64_t>(16, (int64_t{1} << 21) / std::max<int64_t>(k, 1)));
  thread_local std::vector<float> widened;
  widened.resize(static_cast<size_t>(block * k));
  for (int64_t j0 = 0; j0 < n; j0 += block) {
    const int64_t rows = std::min(block, n - j0);
    bf16_rows_to_f32(w + j0 * k, rows, k, widened.data());
    product(j0, rows, widened.data());
  }
}

// y = x · w^T with w [n, k] float32 or bfloat16 (the forward of a Linear layer).
void product_nt(const float* x, int64_t m, int64_t k, LinearWeight w, int64_t n, float* y, bool accumulate,
                int64_t x_stride, int64_t y_stride, GemmPrecision precision) {
  const GemmMatrix a{x, nullptr, x_stride, false};
  if (w.bf16 == nullptr || precision == GemmPrecision::bf16) {
    gemm(a, GemmMatrix{w.f32, w.bf16, k, true}, m, n, k, y, y_stride, accumulate, precision);
    return;
  }
  // float32 arithmetic on bf16 weights: one product per block of output columns.
  widened_blocks(w.bf16, n, k, [&](int64_t j0, int64_t rows, const float* widened) {
    gemm(a, GemmMatrix{widened, nullptr, k, true}, m, rows, k, y + j0, y_stride, accumulate, precision);
  });
}

// One row in bf16 precision: x rounded to bf16 as the products' other rows would be.
const float* rounded_row(const float* x, int64_t k, GemmPrecision precision) {
  if (precision != GemmPrecision::bf16) return x;
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) row[i] = bf16_to_f32(f32_to_bf16(x[i]));
  return row.data();
}

}  // namespace

void linear_forward(const float* x, int64_t m, int64_t k, const float* w, const float* bias, int64_t n, float* y,
                    bool accumulate, int64_t x_stride, int64_t y_stride) {
  linear_forward(x, m, k, LinearWeight{w, nullptr}, bias, n, y, accumulate, x_stride, y_stride);
}

void linear_forward(const float* x, int64_t m, int64_t k, LinearWeight w, const float* bias, int64_t n, float* y,
                    bool accumulate, int64_t x_stride, int64_t y_stride, GemmPrecision precision) {
  if (x_stride == 0) x_stride = k;
  if (y_stride == 0) y_stride = n;
  if (m == 0 || n == 0) return;
  w = for_precision(w, precision);
  const float beta = put_bias(bias, m, n, y, y_stride, accumulate);
  if (m == 1) {  // one row (decoding): a matrix-vector product, without GEMM's packing of w
    const float* xr = rounded_row(x, k, precision);
    if (w.bf16 != nullptr) gemv_bf16(w.bf16, n, k, xr, y, beta != 0.0f);
    else if (precision == GemmPrecision::bf16) gemm(GemmMatrix{xr, nullptr, k, false}, GemmMatrix{w.f32, nullptr, k, true}, 1, n, k, y, y_stride, beta != 0.0f, precision);
    else gemv_f32(w.f32, n, k, xr, y, beta != 0.0f);
    return;
  }
  product_nt(x, m, k, w, n, y, beta != 0.0f, x_stride, y_stride, precision);
}

void linear_forward_shared_input(const float* x, int64_t m, int64_t k, std::span<const LinearOut> outs,
                                 GemmPrecision precision) {
  constexpr size_t kMaxJobs = 4;
  const bool all_bf16 = std::all_of(outs.begin(), outs.end(), [](const LinearOut& o) { return o.w.bf16 != nullptr; });
  if (m != 1 || outs.size() > kMaxJobs || (precision == GemmPrecision::bf16 && !all_bf16)) {
    for (const LinearOut& o : outs) linear_forward(x, m, k, o.w, o.bias, o.n, o.y, false, 0, 0, precision);
    return;
  }
  x = rounded_row(x, k, precision);
  GemvJob jobs[kMaxJobs];
  for (size_t i = 0; i < outs.size(); ++i) {
    const LinearOut& o = outs[i];
    const bool accumulate = put_bias(o.bias, 1, o.n, o.y, o.n, false) != 0.0f;
    const LinearWeight w = for_precision(o.w, precision);
    jobs[i] = GemvJob{w.f32, w.bf16, o.n, k, x, o.y, accumulate};
  }
  gemv_many(jobs, static_cast<int>(outs.size()));
}

void linear_backward(const float* x, int64_t m, int64_t k, LinearWeight w, int64_t n, const float* dy, float* dx,
                     float* dw, float* db, GemmPrecision precision) {
  w = for_precision(w, precision);
  if (w.bf16 == nullptr) {
    linear_backward(x, m, k, w.f32, n, dy, dx, dw, db, precision);
    return;
  }
  if (m == 0) return;
  if (precision == GemmPrecision::bf16) {
    backward_bf16(x, m, k, nullptr, w.bf16, n, dy, dx, dw);
    add_bias_grad(dy, m, n, db);
    return;
  }
  if (dx != nullptr)  // dx += dy[:, j0:j0+rows] · widened w[j0:j0+rows, :], block by block
    widened_blocks(w.bf16, n, k, [&](int64_t j0, int64_t rows, const float* widened) {
      gemm(GemmMatrix{dy + j0, nullptr, n, false}, GemmMatrix{widened, nullptr, k, false}, m, k, rows, dx, k, true,
           precision);
    });
  linear_backward(x, m, k, static_cast<const float*>(nullptr), n, dy, nullptr, dw, db, precision);
}

void linear_backward(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* dy, float* dx,
                     float* dw, float* db, GemmPrecision precision) {
  if (m == 0) return;
  if (precision == GemmPrecision::bf16) {
    backward_bf16(x, m, k, w, nullptr, n, dy, dx, dw);
  } else {
    if (dx != nullptr)
      gemm(GemmMatrix{dy, nullptr, n, false}, GemmMatrix{w, nullptr, k, false}, m, k, n, dx, k, true, precision);
    if (dw != nullptr)
      gemm(GemmMatrix{dy, nullptr, n, true}, GemmMatrix{x, nullptr, k, false}, n, k, m, dw, k, true, precision);
  }
  add_bias_grad(dy, m, n, db);
}

}  // namespace difftx
