#include "kernels/cpu/rope.h"

#include "common/parallel.h"

namespace difftx {

namespace {

// Rotates each pair (x[i], x[i + d/2]) by the angle whose cos and sin are given, sin scaled by
// `sin_sign`: +1 rotates forward, -1 back (the transpose of the rotation).
void rotate_halves(float* x, int64_t rows, int64_t n_heads, int64_t d, int64_t x_stride, const float* cos,
                   const float* sin, float sin_sign) {
  const int64_t half = d / 2;
  parallel_ranges(rows, rows * n_heads * d > 16384, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const float* c = cos + r * half;
      const float* s = sin + r * half;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* a = x + r * x_stride + h * d;
        float* b = a + half;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = a[i], x2 = b[i], si = sin_sign * s[i];
          a[i] = x1 * c[i] - x2 * si;
          b[i] = x2 * c[i] + x1 * si;
        }
      }
    }
  });
}

}  // namespace

void rope_forward(float* x, int64_t rows, int64_t n_heads, int64_t d, int64_t x_stride, const float* cos,
                const float* sin) {
  rotate_halves(x, rows, n_heads, d, x_stride, cos, sin, 1.0f);
}

void rope_backward(float* dx, int64_t rows, int64_t n_heads, int64_t d, int64_t x_stride, const float* cos,
                   const float* sin) {
  rotate_halves(dx, rows, n_heads, d, x_stride, cos, sin, -1.0f);
}

}  // namespace difftx
