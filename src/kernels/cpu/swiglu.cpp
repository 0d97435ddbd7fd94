#include "kernels/cpu/swiglu.h"

#include "common/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace difftx {

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  parallel_ranges(n, n > 65536, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + vec::exp_flush(-g)) * up[i];  // exp(-g) saturates for g < -88: out ~ 0
    }
  });
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  parallel_ranges(n, n > 65536, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float g = gate[i];
      const float s = 1.0f / (1.0f + vec::exp_flush(-g));
      dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
      dup[i] += dout[i] * g * s;
    }
  });
}

}  // namespace difftx
