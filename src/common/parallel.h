// Loops split over the OpenMP threads in fixed contiguous chunks, one per thread.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace difftx {

// body(begin, end) over [0, n): one contiguous chunk per thread when `parallel` (as
// schedule(static)), else once on the calling thread, as also inside a parallel region. For small
// loops this skips the team that an OpenMP `parallel ... if (false)` region still builds: ~1.5 us
// on this machine, 8 us around a `for simd` loop, paid ~10 times per layer of a decoded token
// (bench/NOTES.md, change 18).
template <class F>
void parallel_ranges(int64_t n, bool parallel, F&& body) {
  if (!parallel || n <= 1 || omp_in_parallel()) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    body(n * t / threads, n * (t + 1) / threads);
  }
}

// Deterministic parallel reductions: the sum of f(i) for i in [0, n), split into fixed contiguous
// chunks (one per thread) whose partial sums are added in chunk order, so the result is the same
// on every run with the same thread count (an OpenMP reduction clause combines partial results in
// whatever order threads finish). Training relies on this for bit-identical resumption.
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
