#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "common/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace difftx {

namespace {

// sum_v exp(row[v] - mx) in double of float32 exponentials, each also written to out[v] unless
// out is null (out may be row). Vectorised (vec::exp_flush; libm's double exp was 2.3% of a
// training step, bench/NOTES.md change 19).
double exp_sum(const float* row, int64_t V, float mx, float* out) {
  double sum = 0.0;
  if (out != nullptr) {
#pragma omp simd reduction(+ : sum)
    for (int64_t v = 0; v < V; ++v) {
      const float e = vec::exp_flush(row[v] - mx);
      out[v] = e;
      sum += e;
    }
  } else {
#pragma omp simd reduction(+ : sum)
    for (int64_t v = 0; v < V; ++v) sum += vec::exp_flush(row[v] - mx);
  }
  return sum;
}

}  // namespace

double token_nll(const float* row, int64_t V, int32_t target) {
  const float mx = vec::max_of(row, V);
  return std::log(exp_sum(row, V, mx, nullptr)) + mx - row[target];
}

double cross_entropy_forward_backward(float* logits, const int32_t* targets, int64_t rows, int64_t V, float grad_scale,
                                      bool want_grad) {
  return parallel_sum(rows, [&](int64_t r) -> double {
    float* row = logits + r * V;
    const int32_t target = targets[r];
    if (target == kIgnoreIndex) {
      if (want_grad) std::fill(row, row + V, 0.0f);
      return 0.0;
    }
    const float mx = vec::max_of(row, V), target_logit = row[target];
    const double sum = exp_sum(row, V, mx, want_grad ? row : nullptr);
    const double nll = std::log(sum) + mx - target_logit;
    if (want_grad) {  // row holds the exponentials: softmax = row / sum
      const float scale = static_cast<float>(grad_scale / sum);
#pragma omp simd
      for (int64_t v = 0; v < V; ++v) row[v] *= scale;
      row[target] -= grad_scale;
    }
    return nll;
  });
}

}  // namespace difftx
