// Deterministic parallel reductions: the sum of f(i) for i in [0, n), split into fixed contiguous
// chunks (one per thread) whose partial sums are added in chunk order, so the result is the same
// on every run with the same thread count (an OpenMP reduction clause combines partial results in
// whatever order threads finish). Training relies on this for bit-identical resumption.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace difftx {

template <class F>
double parallel_sum(int64_t n, F&& f, int64_t min_per_thread = 1) {
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), n / std::max<int64_t>(1, min_per_thread)));
  std::vector<double> partial(static_cast<size_t>(threads), 0.0);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int64_t t = 0; t < threads; ++t) {
    const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    double s = 0.0;
    for (int64_t i = begin; i < end; ++i) s += f(i);
    partial[t] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace difftx
