// The attention kernels' tile product (tiles::avx512::product) against a double-precision loop,
// over shapes that hit every register block and tail (rows 1..6 beyond multiples of 6, columns
// beyond multiples of 16 and 64, depths beyond multiples of 128), both ways of reading A, and
// both modes (accumulate; overwrite with a scale); and TransposedKeys + the transposed scores
// against the plain scores. Skipped on builds without AVX-512 (the kernels then use OpenBLAS).
#include "kernels/cpu/attention_tiles.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace difftx {
namespace {

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(TileProduct, MatchesADoubleLoopOnEveryBlockShape) {
#if !defined(__AVX512F__)
  GTEST_SKIP() << "built without AVX-512: the attention tiles use OpenBLAS";
#else
  std::mt19937 rng(7);
  int checked = 0;
  for (int64_t m : {1, 5, 6, 7, 13, 32})
    for (int64_t n : {1, 15, 16, 17, 40, 50, 64, 65, 130})
      for (int64_t kdim : {0, 1, 127, 128, 129, 300})
        for (bool transposed_a : {false, true})
          for (bool overwrite : {false, true}) {
            const float alpha = overwrite ? 0.125f : 1.0f;
            // A is m x kdim; stored row-major with padding (lda = kdim + 3) or as its transpose.
            const int64_t lda = transposed_a ? m + 2 : kdim + 3;
            const int64_t rsa = transposed_a ? 1 : lda, csa = transposed_a ? lda : 1;
            const int64_t ldb = n + 5, ldc = n + 1;
            const std::vector<float> a = random_values(static_cast<size_t>((transposed_a ? kdim : m) * lda + 1), rng);
            const std::vector<float> b = random_values(static_cast<size_t>(kdim * ldb + 1), rng);
            std::vector<float> c = random_values(static_cast<size_t>(m * ldc), rng);
            const std::vector<float> c0 = c;
            tiles::avx512::product(a.data(), rsa, csa, b.data(), ldb, m, n, kdim, c.data(), ldc, overwrite, alpha);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < ldc; ++j) {
                const size_t at = static_cast<size_t>(i * ldc + j);
                if (j >= n) {  // padding between rows of c is never written
                  ASSERT_EQ(c[at], c0[at]) << "m " << m << " n " << n << " k " << kdim << " wrote column " << j;
                  continue;
                }
                double sum = 0.0, magnitude = 0.0;
                for (int64_t k = 0; k < kdim; ++k) {
                  const double term = double(a[i * rsa + k * csa]) * b[k * ldb + j];
                  sum += term;
                  magnitude += std::fabs(term);
                }
                const double want = (overwrite ? 0.0 : c0[at]) + alpha * sum;
                ASSERT_NEAR(c[at], want, 1e-5 * (1.0 + alpha * magnitude + std::fabs(c0[at])))
                    << "m " << m << " n " << n << " k " << kdim << " transposed " << transposed_a << " overwrite "
                    << overwrite << " at " << i << "," << j;
                ++checked;
              }
          }
  EXPECT_GT(checked, 100000);
#endif
}

// Scores from keys transposed once per call equal the dot-product scores, for every head and
// starting key, and calls with few query rows do not build the transposed copy.
TEST(TileProduct, TransposedKeysGiveTheSameScores) {
  std::mt19937 rng(11);
  const int64_t batch = 2, heads = 3, capacity = 70, len = 61, d = 64, rows = 20;
  const std::vector<float> k = random_values(static_cast<size_t>(batch * heads * capacity * d), rng);
  const std::vector<float> q = random_values(static_cast<size_t>(rows * d), rng);
  const tiles::TransposedKeys few(k.data(), batch, heads, capacity, len, d, tiles::TransposedKeys::kTransposeMinRows - 1);
  EXPECT_EQ(few.at(0, 0, 0), nullptr);
  const tiles::TransposedKeys kt(k.data(), batch, heads, capacity, len, d, rows);
#if defined(__AVX512F__)
  ASSERT_NE(kt.at(0, 0, 0), nullptr);
  EXPECT_EQ(kt.stride(), len);
#endif
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t first : {0, 5, 60}) {
        const int64_t n = len - first;
        const float* keys = k.data() + ((b * heads + h) * capacity + first) * d;
        std::vector<float> plain(static_cast<size_t>(rows * n)), fast(plain.size());
        tiles::scores(q.data(), d, keys, d, rows, n, d, 0.125f, plain.data());
        tiles::scores(q.data(), d, keys, d, kt.at(b, h, first), kt.stride(), rows, n, d, 0.125f, fast.data());
        for (size_t i = 0; i < plain.size(); ++i)
          ASSERT_NEAR(fast[i], plain[i], 1e-5f * (1.0f + std::fabs(plain[i]))) << "b " << b << " h " << h << " i " << i;
      }
}

}  // namespace
}  // namespace difftx
