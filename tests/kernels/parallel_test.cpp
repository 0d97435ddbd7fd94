// parallel_ranges (common/parallel.h): every index of [0, n) handed out exactly once, in contiguous
// ranges, one per thread when asked to run in parallel, one range on the calling thread otherwise
// and inside a parallel region (no nested team); parallel_sum adds its chunks in order.
#include "common/parallel.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

namespace difftx {
namespace {

std::vector<std::pair<int64_t, int64_t>> ranges_of(int64_t n, bool parallel) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::mutex lock;
  parallel_ranges(n, parallel, [&](int64_t begin, int64_t end) {
    const std::lock_guard<std::mutex> hold(lock);
    ranges.emplace_back(begin, end);
  });
  std::sort(ranges.begin(), ranges.end());
  return ranges;
}

TEST(ParallelRanges, CoverEveryIndexOnceInContiguousRanges) {
  const int threads = omp_get_max_threads();
  for (int64_t n : {0, 1, 2, 7, 1000})
    for (bool parallel : {false, true}) {
      const auto ranges = ranges_of(n, parallel);
      ASSERT_FALSE(ranges.empty()) << n;
      int64_t next = 0;
      for (const auto& [begin, end] : ranges) {
        EXPECT_EQ(begin, next) << "n " << n << " parallel " << parallel;
        EXPECT_LE(begin, end);
        next = end;
      }
      EXPECT_EQ(next, n);
      const size_t expected = parallel && n > 1 ? static_cast<size_t>(threads) : 1u;
      EXPECT_EQ(ranges.size(), expected) << "n " << n << " parallel " << parallel;
    }
}

TEST(ParallelRanges, InsideAParallelRegionEachThreadRunsTheWholeRange) {
  std::vector<int64_t> seen(static_cast<size_t>(omp_get_max_threads()), -1);
#pragma omp parallel
  {
    int64_t calls = 0, covered = 0;
    parallel_ranges(100, true, [&](int64_t begin, int64_t end) {
      ++calls;
      covered += end - begin;
    });
    seen[static_cast<size_t>(omp_get_thread_num())] = calls == 1 ? covered : -calls;
  }
  for (int64_t s : seen) EXPECT_EQ(s, 100);
}

TEST(ParallelSum, EqualsTheSumAndRepeats) {
  const auto f = [](int64_t i) { return 1.0 / static_cast<double>(i + 1); };
  double serial = 0;
  for (int64_t i = 0; i < 10000; ++i) serial += f(i);
  const double a = parallel_sum(10000, f), b = parallel_sum(10000, f);
  EXPECT_NEAR(a, serial, 1e-12);
  EXPECT_EQ(a, b);
  EXPECT_EQ(parallel_sum(0, f), 0.0);
}

}  // namespace
}  // namespace difftx
