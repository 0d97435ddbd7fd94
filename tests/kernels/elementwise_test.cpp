// RMSNorm, RoPE, SwiGLU and the linear layer against direct evaluations of spec §1.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

namespace difftx {
namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(RmsNorm, MatchesDefinitionWithAndWithoutWeight) {
  const int64_t rows = 7, dim = 33;
  auto x = randn(rows * dim, 1), w = randn(dim, 2);
  std::vector<float> out(x.size()), out_nw(x.size());
  rmsnorm_forward(out.data(), x.data(), w.data(), rows, dim, 1e-5f);
  rmsnorm_forward(out_nw.data(), x.data(), nullptr, rows, dim, 1e-5f);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t i = 0; i < dim; ++i) ms += double(x[r * dim + i]) * x[r * dim + i];
    double inv = 1.0 / std::sqrt(ms / dim + 1e-5);
    for (int64_t i = 0; i < dim; ++i) {
      EXPECT_NEAR(out[r * dim + i], w[i] * x[r * dim + i] * inv, 1e-5);
      EXPECT_NEAR(out_nw[r * dim + i], x[r * dim + i] * inv, 1e-5);
    }
  }
  rmsnorm_forward(x.data(), x.data(), w.data(), rows, dim, 1e-5f);  // in place
  EXPECT_EQ(x, out);
}

TEST(Rope, RotatesHalvesByTheGivenAngles) {
  const int64_t rows = 3, heads = 2, d = 8, stride = 20;  // stride > heads * d
  auto x = randn(rows * stride, 3);
  auto orig = x;
  std::vector<float> cos(rows * d / 2), sin(cos.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < d / 2; ++i) {
      double angle = (r + 1) * std::pow(10000.0, -2.0 * i / d);
      cos[r * d / 2 + i] = float(std::cos(angle));
      sin[r * d / 2 + i] = float(std::sin(angle));
    }
  rope_forward(x.data(), rows, heads, d, stride, cos.data(), sin.data());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d / 2; ++i) {
        const float* o = &orig[r * stride + h * d];
        float c = cos[r * d / 2 + i], s = sin[r * d / 2 + i];
        EXPECT_NEAR(x[r * stride + h * d + i], o[i] * c - o[i + d / 2] * s, 1e-6);
        EXPECT_NEAR(x[r * stride + h * d + i + d / 2], o[i + d / 2] * c + o[i] * s, 1e-6);
      }
    for (int64_t j = heads * d; j < stride; ++j) EXPECT_EQ(x[r * stride + j], orig[r * stride + j]);  // untouched
  }
}

TEST(SwiGlu, IsSiluOfGateTimesUp) {
  auto g = randn(100, 4), u = randn(100, 5);
  std::vector<float> out(100);
  swiglu_forward(out.data(), g.data(), u.data(), 100);
  for (int i = 0; i < 100; ++i) EXPECT_NEAR(out[i], g[i] / (1.0 + std::exp(-double(g[i]))) * u[i], 1e-6);
}

TEST(Linear, ComputesXWTransposedPlusBiasAndAccumulates) {
  const int64_t m = 5, k = 7, n = 3;
  auto x = randn(m * k, 6), w = randn(n * k, 7), b = randn(n, 8);
  std::vector<float> y(m * n), y2(m * n, 1.0f);
  linear_forward(x.data(), m, k, w.data(), b.data(), n, y.data());
  linear_forward(x.data(), m, k, w.data(), b.data(), n, y2.data(), /*accumulate=*/true);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = b[j];
      for (int64_t t = 0; t < k; ++t) s += double(x[i * k + t]) * w[j * k + t];
      EXPECT_NEAR(y[i * n + j], s, 1e-5);
      EXPECT_NEAR(y2[i * n + j], s + 1.0, 1e-5);
    }
}

}  // namespace
}  // namespace difftx
