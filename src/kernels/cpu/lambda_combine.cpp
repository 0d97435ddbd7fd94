#include "kernels/cpu/lambda_combine.h"

#include <cmath>

namespace difftx {

namespace {

float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

}  // namespace

void lambda_combine_forward(const float* a, const float* z, float mix, int64_t n, int64_t heads, int64_t d,
                            float* out) {
#pragma omp parallel for schedule(static) if (n * heads * d > (1 << 15))
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < heads; ++i) {
      const float lambda = mix * sigmoid(z[t * heads + i]);
      const float* first = a + (t * 2 * heads + 2 * i) * d;
      const float* second = first + d;
      float* o = out + (t * heads + i) * d;
      for (int64_t x = 0; x < d; ++x) o[x] = first[x] - lambda * second[x];
    }
}

void lambda_combine_backward(const float* a, const float* z, float mix, const float* d_out, int64_t n, int64_t heads,
                             int64_t d, float* d_a, float* d_z) {
#pragma omp parallel for schedule(static) if (n * heads * d > (1 << 15))
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < heads; ++i) {
      const float s = sigmoid(z[t * heads + i]), lambda = mix * s;
      const float* second = a + (t * 2 * heads + 2 * i + 1) * d;
      const float* g = d_out + (t * heads + i) * d;
      float* d_first = d_a + (t * 2 * heads + 2 * i) * d;
      float* d_second = d_first + d;
      double dot = 0;
      for (int64_t x = 0; x < d; ++x) {
        d_first[x] += g[x];
        d_second[x] -= lambda * g[x];
        dot += static_cast<double>(g[x]) * second[x];
      }
      d_z[t * heads + i] -= static_cast<float>(mix * s * (1.0f - s) * dot);
    }
}

}  // namespace difftx
