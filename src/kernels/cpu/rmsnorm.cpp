#include "kernels/cpu/rmsnorm.h"

#include <cmath>

namespace difftx {

void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = out + r * dim;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < dim; ++i) sum += xr[i] * xr[i];
    float inv = 1.0f / std::sqrt(sum / static_cast<float>(dim) + eps);
    if (weight != nullptr) {
#pragma omp simd
      for (int64_t i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * inv);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * inv;
    }
  }
}

}  // namespace difftx
