// The vectorisable exp of the softmax passes against std::exp (double) over its whole range.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/vec_math.h"

namespace difftx {
namespace {

// Every 1/4096 step of [-87.3, 88.3], plus points near integer multiples of ln 2 (where the
// reduction switches k) and tiny arguments.
std::vector<float> exp_arguments() {
  std::vector<float> xs;
  for (double x = -87.3; x <= 88.3; x += 1.0 / 4096) xs.push_back(static_cast<float>(x));
  for (int k = -125; k <= 126; ++k)
    for (float e : {-1e-4f, 0.0f, 1e-4f}) xs.push_back(static_cast<float>((k + 0.5) * std::log(2.0)) + e);
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f}) xs.push_back(x);
  std::erase_if(xs, [](float x) { return x < -87.3f || x > 88.3f; });
  return xs;
}

TEST(VecMath, ExpMatchesStdExpOverItsRange) {
  double worst = 0.0;
  float worst_x = 0.0f;
  for (float x : exp_arguments()) {
    const double ref = std::exp(static_cast<double>(x));
    const double rel = std::abs(vec::exp_flush(x) - ref) / ref;
    if (rel > worst) {
      worst = rel;
      worst_x = x;
    }
  }
  EXPECT_LT(worst, 2.5e-7) << "at x = " << worst_x;
  EXPECT_EQ(vec::exp_flush(0.0f), 1.0f);
  EXPECT_EQ(vec::exp_flush(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(vec::exp_flush(-100.0f), 0.0f);
  EXPECT_TRUE(std::isnan(vec::exp_flush(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isfinite(vec::exp_flush(1000.0f)));
}

// exp_shifted_sum's own vector form (AVX-512 builds) over the same arguments, in one row whose
// length is not a multiple of 16 (the masked tail), and its special values.
TEST(VecMath, ExpShiftedSumMatchesStdExpOverTheRange) {
  const std::vector<float> xs = exp_arguments();
  ASSERT_NE(xs.size() % 16, 0u);
  std::vector<float> row = xs;
  const float sum = vec::exp_shifted_sum(row.data(), static_cast<int64_t>(row.size()), 0.0f);
  double worst = 0.0, ref_sum = 0.0;
  float worst_x = 0.0f;
  for (size_t j = 0; j < xs.size(); ++j) {
    const double ref = std::exp(static_cast<double>(xs[j]));
    ref_sum += ref;
    const double rel = std::abs(row[j] - ref) / ref;
    if (rel > worst) {
      worst = rel;
      worst_x = xs[j];
    }
  }
  EXPECT_LT(worst, 2.5e-7) << "at x = " << worst_x;
  EXPECT_TRUE(std::isinf(sum));  // up to e^88.3 each: beyond float, as the double sum is (~9e41)
  EXPECT_GT(ref_sum, 3.4e38);
  // The sum over the arguments of a softmax (<= 0).
  std::vector<float> negative;
  for (float x : xs)
    if (x <= 0.0f) negative.push_back(x);
  double ref_negative = 0.0;
  for (float x : negative) ref_negative += std::exp(static_cast<double>(x));
  const float sum_negative = vec::exp_shifted_sum(negative.data(), static_cast<int64_t>(negative.size()), 0.0f);
  EXPECT_NEAR(sum_negative, ref_negative, 1e-5 * ref_negative);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t n : {1, 5, 16, 17, 33}) {  // the special value at every lane, in full and tail vectors
    for (int64_t at = 0; at < n; ++at)
      for (float special : {-inf, -100.0f, -87.4f, nan, 1000.0f}) {
        std::vector<float> r(static_cast<size_t>(n), 0.0f);
        r[at] = special;
        vec::exp_shifted_sum(r.data(), n, 0.0f);
        if (std::isnan(special)) {
          EXPECT_TRUE(std::isnan(r[at])) << n << " " << at;
        } else if (special > 0.0f) {
          EXPECT_TRUE(std::isfinite(r[at]) && r[at] > 1e38f) << n << " " << at << " " << r[at];
        } else {
          EXPECT_EQ(r[at], 0.0f) << special << " at " << at << " of " << n;
        }
        for (int64_t j = 0; j < n; ++j) EXPECT_TRUE(j == at || r[j] == 1.0f) << "lane " << j << " of " << n;
      }
  }
}

TEST(VecMath, ExpShiftedSumIsASoftmaxNumerator) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> row = {1.0f, -inf, 3.0f, 2.5f, -inf, -200.0f, 0.0f};
  const std::vector<float> in = row;
  const float sum = vec::exp_shifted_sum(row.data(), static_cast<int64_t>(row.size()), 3.0f);
  double ref_sum = 0.0;
  for (size_t j = 0; j < in.size(); ++j) {
    const double ref = std::isinf(in[j]) ? 0.0 : std::exp(static_cast<double>(in[j]) - 3.0);
    EXPECT_NEAR(row[j], ref, std::max(3e-7 * ref, 1e-38)) << j;
    ref_sum += ref;
  }
  EXPECT_NEAR(sum, ref_sum, 1e-6 * ref_sum);
  EXPECT_EQ(row[1], 0.0f);
  EXPECT_EQ(row[5], 0.0f);
}

// max_of over every length up to 40 (full vectors and masked tails), with -inf and NaN entries,
// at every position of the largest value.
TEST(VecMath, MaxOfFindsTheLargestEntrySkippingNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(vec::max_of(nullptr, 0), -inf);
  for (int64_t n = 1; n <= 40; ++n)
    for (int64_t at = 0; at < n; ++at) {
      std::vector<float> x(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) x[j] = j % 3 == 0 ? -inf : -static_cast<float>(j) - 1.0f;
      if (n > 2) x[(at + 1) % n] = std::numeric_limits<float>::quiet_NaN();
      x[at] = 5.0f + static_cast<float>(at);
      EXPECT_EQ(vec::max_of(x.data(), n), 5.0f + static_cast<float>(at)) << "n " << n << " at " << at;
    }
  const std::vector<float> masked = {-inf, -inf, -inf};
  EXPECT_EQ(vec::max_of(masked.data(), 3), -inf);
}

}  // namespace
}  // namespace difftx
