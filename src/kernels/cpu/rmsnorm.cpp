#include "kernels/cpu/rmsnorm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/parallel.h"

namespace difftx {

void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps) {
  parallel_ranges(rows, rows * dim > 16384, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const float* xr = x + r * dim;
      float* yr = out + r * dim;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < dim; ++i) sum += xr[i] * xr[i];
      const float inv = 1.0f / std::sqrt(sum / static_cast<float>(dim) + eps);
      if (weight != nullptr) {
#pragma omp simd
        for (int64_t i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * inv);
      } else {
#pragma omp simd
        for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * inv;
      }
    }
  });
}

void rmsnorm_backward(float* dx, float* dweight, const float* dy, const float* x, const float* weight, int64_t rows,
                      int64_t dim, float eps) {
  // Rows in fixed contiguous chunks, one per thread; the weight gradient is summed per chunk and
  // the chunks added in order, so the result does not depend on thread timing.
  const int64_t threads = rows * dim > 16384 ? std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), rows)) : 1;
  std::vector<float> dw_chunks(dweight != nullptr ? static_cast<size_t>(threads * dim) : 0, 0.0f);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int64_t chunk = 0; chunk < threads; ++chunk) {
    float* dw_local = dweight != nullptr ? dw_chunks.data() + chunk * dim : nullptr;
    for (int64_t r = rows * chunk / threads; r < rows * (chunk + 1) / threads; ++r) {
      const float* xr = x + r * dim;
      const float* gr = dy + r * dim;
      float ss = 0.0f, dot = 0.0f;
      for (int64_t i = 0; i < dim; ++i) {
        ss += xr[i] * xr[i];
        dot += (weight ? weight[i] : 1.0f) * gr[i] * xr[i];
      }
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
      const float c = dot * inv * inv * inv / static_cast<float>(dim);
      float* dxr = dx + r * dim;
      for (int64_t i = 0; i < dim; ++i) dxr[i] += inv * (weight ? weight[i] : 1.0f) * gr[i] - c * xr[i];
      if (dweight != nullptr)
        for (int64_t i = 0; i < dim; ++i) dw_local[i] += gr[i] * xr[i] * inv;
    }
  }
  if (dweight != nullptr)
    for (int64_t chunk = 0; chunk < threads; ++chunk)
      for (int64_t i = 0; i < dim; ++i) dweight[i] += dw_chunks[chunk * dim + i];
}

}  // namespace difftx
