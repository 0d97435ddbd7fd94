// kernels/cpu/gemm.h and the products of kernels/cpu/linear.h: oneDNN's results against a double
// reference, in the three forms training uses (x·w^T, dy·w, dy^T·x), with strides and
// accumulation; the same bits on every call; bf16 precision against the reference on rounded
// operands.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "common/bf16.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/linear.h"

namespace difftx {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

std::vector<float> rounded(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(v[i]));
  return r;
}

// Element (i, j) of an operand as GemmMatrix describes it.
float at(const float* p, int64_t ld, bool transposed, int64_t i, int64_t j) {
  return transposed ? p[j * ld + i] : p[i * ld + j];
}

// Checks c against c0 (+) a·b in double, each element within tol of sum_k |a_ik b_kj|.
void expect_product(const float* a, int64_t lda, bool ta, const float* b, int64_t ldb, bool tb, int64_t M, int64_t N,
                    int64_t K, const std::vector<float>& c0, const std::vector<float>& c, int64_t ldc, bool accumulate,
                    double tol) {
  double worst = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = accumulate ? c0[i * ldc + j] : 0.0, mag = std::abs(s);
      for (int64_t k = 0; k < K; ++k) {
        const double t = double(at(a, lda, ta, i, k)) * at(b, ldb, tb, k, j);
        s += t;
        mag += std::abs(t);
      }
      worst = std::max(worst, std::abs(c[i * ldc + j] - s) / std::max(mag, 1e-30));
    }
  EXPECT_LE(worst, tol) << M << "x" << N << "x" << K << " ta " << ta << " tb " << tb << " acc " << accumulate;
}

struct Case {
  int64_t M, N, K;
  bool ta, tb, accumulate;
};

const Case kCases[] = {
    {7, 5, 3, false, true, false},    {64, 96, 48, false, true, false}, {130, 33, 257, false, true, true},
    {33, 65, 17, false, false, true}, {65, 47, 129, true, false, true}, {1, 300, 64, false, true, false},
};

TEST(Gemm, Float32MatchesADoubleReferenceInEveryForm) {
  for (const Case& t : kCases) {
    // Operands with padded rows: ld = stored columns + 3.
    const int64_t a_rows = t.ta ? t.K : t.M, a_cols = t.ta ? t.M : t.K, lda = a_cols + 3;
    const int64_t b_rows = t.tb ? t.N : t.K, b_cols = t.tb ? t.K : t.N, ldb = b_cols + 3, ldc = t.N + 2;
    const auto a = random_values(a_rows * lda, 1), b = random_values(b_rows * ldb, 2);
    const auto c0 = random_values(t.M * ldc, 3);
    std::vector<float> c = c0;
    gemm(GemmMatrix{a.data(), nullptr, lda, t.ta}, GemmMatrix{b.data(), nullptr, ldb, t.tb}, t.M, t.N, t.K, c.data(),
         ldc, t.accumulate, GemmPrecision::f32);
    expect_product(a.data(), lda, t.ta, b.data(), ldb, t.tb, t.M, t.N, t.K, c0, c, ldc, t.accumulate, 1e-6);
    for (int64_t i = 0; i < t.M; ++i)  // the padding between rows is left alone
      for (int64_t j = t.N; j < ldc; ++j) EXPECT_EQ(c[i * ldc + j], c0[i * ldc + j]);
  }
}

TEST(Gemm, TheSameCallGivesTheSameBits) {
  const int64_t M = 96, N = 200, K = 160;
  const auto a = random_values(M * K, 4), b = random_values(N * K, 5);
  std::vector<float> first(M * N), again(M * N);
  for (std::vector<float>* c : {&first, &again})
    gemm(GemmMatrix{a.data(), nullptr, K, false}, GemmMatrix{b.data(), nullptr, K, true}, M, N, K, c->data(), N,
         false, GemmPrecision::f32);
  EXPECT_EQ(first, again);
}

TEST(Gemm, EmptyInnerDimensionZeroesOrKeeps) {
  std::vector<float> c = {1, 2, 3, 4};
  const float unused = 0;
  gemm(GemmMatrix{&unused, nullptr, 1, false}, GemmMatrix{&unused, nullptr, 2, false}, 2, 2, 0, c.data(), 2, true,
       GemmPrecision::f32);
  EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4}));
  gemm(GemmMatrix{&unused, nullptr, 1, false}, GemmMatrix{&unused, nullptr, 2, false}, 2, 2, 0, c.data(), 2, false,
       GemmPrecision::f32);
  EXPECT_EQ(c, (std::vector<float>{0, 0, 0, 0}));
}

TEST(Gemm, Float32RefusesBf16Operands) {
  const uint16_t w[4] = {};
  const float x[4] = {};
  float y[4];
  EXPECT_THROW(gemm(GemmMatrix{x, nullptr, 2, false}, GemmMatrix{nullptr, w, 2, true}, 2, 2, 2, y, 2, false,
                    GemmPrecision::f32),
               std::invalid_argument);
}

TEST(Gemm, Bf16RoundsTheOperandsAndSumsInFloat32) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no native bf16 products on this CPU";
  for (const Case& t : kCases) {
    const int64_t a_rows = t.ta ? t.K : t.M, a_cols = t.ta ? t.M : t.K;
    const int64_t b_rows = t.tb ? t.N : t.K, b_cols = t.tb ? t.K : t.N;
    const auto a = random_values(a_rows * a_cols, 6), b = random_values(b_rows * b_cols, 7);
    const auto c0 = random_values(t.M * t.N, 8);
    std::vector<float> c = c0;
    gemm(GemmMatrix{a.data(), nullptr, a_cols, t.ta}, GemmMatrix{b.data(), nullptr, b_cols, t.tb}, t.M, t.N, t.K,
         c.data(), t.N, t.accumulate, GemmPrecision::bf16);
    // Exact products of the rounded operands summed in float32: the float32 tolerance.
    const auto ar = rounded(a), br = rounded(b);
    expect_product(ar.data(), a_cols, t.ta, br.data(), b_cols, t.tb, t.M, t.N, t.K, c0, c, t.N, t.accumulate, 1e-5);
  }
}

TEST(Gemm, LinearLayerInBf16MatchesTheRoundedReference) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no native bf16 products on this CPU";
  const int64_t m = 37, k = 70, n = 45;
  const auto x = random_values(m * k, 9), w = random_values(n * k, 10), dy = random_values(m * n, 11);
  const auto xr = rounded(x), wr = rounded(w), dyr = rounded(dy);
  // Forward, with bf16 weights as they are and with float32 weights rounded on the fly: the same bits.
  std::vector<uint16_t> w16(n * k);
  for (size_t i = 0; i < w16.size(); ++i) w16[i] = f32_to_bf16(w[i]);
  std::vector<float> y(m * n), y16(m * n), zero(m * n, 0.0f);
  linear_forward(x.data(), m, k, LinearWeight{w.data(), nullptr}, nullptr, n, y.data(), false, 0, 0,
                 GemmPrecision::bf16);
  linear_forward(x.data(), m, k, LinearWeight{nullptr, w16.data()}, nullptr, n, y16.data(), false, 0, 0,
                 GemmPrecision::bf16);
  EXPECT_EQ(y, y16);
  expect_product(xr.data(), k, false, wr.data(), k, true, m, n, k, zero, y, n, false, 1e-5);
  // Backward: dx = dy·w and dw = dy^T·x on the rounded values, accumulated onto what was there.
  const auto dx0 = random_values(m * k, 12), dw0 = random_values(n * k, 13);
  std::vector<float> dx = dx0, dw = dw0;
  linear_backward(x.data(), m, k, w.data(), n, dy.data(), dx.data(), dw.data(), nullptr, GemmPrecision::bf16);
  expect_product(dyr.data(), n, false, wr.data(), k, false, m, k, n, dx0, dx, k, true, 1e-5);
  expect_product(dyr.data(), n, true, xr.data(), k, false, n, k, m, dw0, dw, k, true, 1e-5);
}

}  // namespace
}  // namespace difftx
