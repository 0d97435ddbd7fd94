#include "kernels/cpu/rope.h"

namespace difftx {

void rope_apply(float* x, int64_t rows, int64_t n_heads, int64_t d, int64_t x_stride, const float* cos,
                const float* sin) {
  const int64_t half = d / 2;
#pragma omp parallel for schedule(static) if (rows * n_heads * d > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cos + r * half;
    const float* s = sin + r * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* a = x + r * x_stride + h * d;
      float* b = a + half;
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        float x1 = a[i], x2 = b[i];
        a[i] = x1 * c[i] - x2 * s[i];
        b[i] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

void rope_backward(float* dx, int64_t rows, int64_t n_heads, int64_t d, int64_t x_stride, const float* cos,
                   const float* sin) {
  const int64_t half = d / 2;
#pragma omp parallel for schedule(static) if (rows * n_heads * d > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cos + r * half;
    const float* s = sin + r * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* a = dx + r * x_stride + h * d;
      float* b = a + half;
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        float g1 = a[i], g2 = b[i];
        a[i] = g1 * c[i] + g2 * s[i];
        b[i] = g2 * c[i] - g1 * s[i];
      }
    }
  }
}

}  // namespace difftx
