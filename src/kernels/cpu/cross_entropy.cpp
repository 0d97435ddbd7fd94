#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "common/parallel.h"

namespace difftx {

double cross_entropy_forward_backward(float* logits, const int32_t* targets, int64_t rows, int64_t V, float grad_scale,
                                      bool want_grad) {
  return parallel_sum(rows, [&](int64_t r) -> double {
    float* row = logits + r * V;
    const int32_t target = targets[r];
    if (target == kIgnoreIndex) {
      if (want_grad) std::fill(row, row + V, 0.0f);
      return 0.0;
    }
    const float mx = *std::max_element(row, row + V);
    double sum = 0.0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
    const double log_z = std::log(sum) + mx;
    const double nll = log_z - row[target];
    if (want_grad) {
      for (int64_t v = 0; v < V; ++v) row[v] = static_cast<float>(std::exp(row[v] - log_z)) * grad_scale;
      row[target] -= grad_scale;
    }
    return nll;
  });
}

}  // namespace difftx
