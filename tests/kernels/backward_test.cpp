// Backward kernels against central finite differences of their forward functions.
// Each check uses L = sum(c * f(x)) with a random c, so dL/dy = c, and compares the kernel's
// gradient with (L(x + h e_i) - L(x - h e_i)) / 2h on every coordinate.
#include <gtest/gtest.h>

#include "fd_util.h"

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

namespace difftx {
namespace {

using test::dot;
using test::fd_error;
using test::randn;

TEST(Backward, Linear) {
  const int64_t m = 3, k = 5, n = 4;
  auto x = randn(m * k, 1), w = randn(n * k, 2), b = randn(n, 3), c = randn(m * n, 4);
  auto loss = [&] {
    std::vector<float> y(m * n);
    linear_forward(x.data(), m, k, w.data(), b.data(), n, y.data());
    return dot(y, c);
  };
  std::vector<float> dx(m * k, 0.0f), dw(n * k, 0.0f), db(n, 0.0f);
  linear_backward(x.data(), m, k, w.data(), n, c.data(), dx.data(), dw.data(), db.data());
  EXPECT_LT(fd_error(x, dx, loss), 2e-3);
  EXPECT_LT(fd_error(w, dw, loss), 2e-3);
  EXPECT_LT(fd_error(b, db, loss), 2e-3);
  // Accumulates: a second call doubles the gradients.
  std::vector<float> dx2 = dx;
  linear_backward(x.data(), m, k, w.data(), n, c.data(), dx2.data(), nullptr, nullptr);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_FLOAT_EQ(dx2[i], 2 * dx[i]);
}

TEST(Backward, RmsNormWithAndWithoutWeight) {
  const int64_t rows = 3, dim = 7;
  auto x = randn(rows * dim, 5), w = randn(dim, 6, 0.5f), c = randn(rows * dim, 7);
  for (auto& v : w) v += 1.0f;
  for (bool with_weight : {true, false}) {
    const float* wp = with_weight ? w.data() : nullptr;
    auto loss = [&] {
      std::vector<float> y(rows * dim);
      rmsnorm_forward(y.data(), x.data(), wp, rows, dim, 1e-5f);
      return dot(y, c);
    };
    std::vector<float> dx(rows * dim, 0.0f), dw(dim, 0.0f);
    rmsnorm_backward(dx.data(), with_weight ? dw.data() : nullptr, c.data(), x.data(), wp, rows, dim, 1e-5f);
    EXPECT_LT(fd_error(x, dx, loss, 1e-3f), 5e-3) << with_weight;
    if (with_weight) {
      EXPECT_LT(fd_error(w, dw, loss, 1e-3f), 5e-3);
    }
  }
}

TEST(Backward, RopeIsTheTransposedRotation) {
  const int64_t rows = 3, heads = 2, d = 8, stride = 18;
  auto x = randn(rows * stride, 8), c = randn(rows * stride, 9);
  std::vector<float> cos(rows * d / 2), sin(cos.size());
  for (size_t i = 0; i < cos.size(); ++i) {
    cos[i] = 1.1f * std::cos(0.3f * float(i));  // an attention factor 1.1, as yarn has
    sin[i] = 1.1f * std::sin(0.3f * float(i));
  }
  auto loss = [&] {
    std::vector<float> y = x;
    rope_forward(y.data(), rows, heads, d, stride, cos.data(), sin.data());
    return dot(y, c);
  };
  std::vector<float> dx = c;
  rope_backward(dx.data(), rows, heads, d, stride, cos.data(), sin.data());
  EXPECT_LT(fd_error(x, dx, loss), 2e-3);
}

TEST(Backward, SwiGlu) {
  const int64_t n = 20;
  auto g = randn(n, 10, 2.0f), u = randn(n, 11), c = randn(n, 12);
  auto loss = [&] {
    std::vector<float> y(n);
    swiglu_forward(y.data(), g.data(), u.data(), n);
    return dot(y, c);
  };
  std::vector<float> dg(n, 0.0f), du(n, 0.0f);
  swiglu_backward(dg.data(), du.data(), c.data(), g.data(), u.data(), n);
  EXPECT_LT(fd_error(g, dg, loss, 1e-3f), 5e-3);
  EXPECT_LT(fd_error(u, du, loss, 1e-3f), 5e-3);
}

TEST(Backward, CrossEntropyWithIgnoredRows) {
  const int64_t rows = 4, V = 9;
  auto logits = randn(rows * V, 13, 2.0f);
  std::vector<int32_t> targets = {3, kIgnoreIndex, 0, 8};
  const float scale = 1.0f / 3.0f;  // mean over the 3 counted rows
  auto loss = [&] {
    std::vector<float> copy = logits;
    return cross_entropy_forward_backward(copy.data(), targets.data(), rows, V, scale, false) * scale;
  };
  std::vector<float> grad = logits;
  double total = cross_entropy_forward_backward(grad.data(), targets.data(), rows, V, scale, true);
  // Direct value: row 0's -log softmax at 3.
  double z = 0, mx = *std::max_element(logits.begin(), logits.begin() + V);
  for (int v = 0; v < V; ++v) z += std::exp(logits[v] - mx);
  double row0 = std::log(z) + mx - logits[3];
  EXPECT_GT(total, row0);
  EXPECT_LT(fd_error(logits, grad, loss, 1e-3f), 5e-3);
  for (int v = 0; v < V; ++v) EXPECT_EQ(grad[V + v], 0.0f);  // ignored row
}

// A vocabulary of SmolLM2's width, logits spread over +-30 and one row whose target's probability
// underflows float32 (logit 100 below the max): loss, token_nll and the gradient against double.
TEST(Backward, CrossEntropyMatchesDoubleOnAWideVocabulary) {
  const int64_t rows = 3, V = 49152 + 7;
  auto logits = randn(rows * V, 5, 10.0f);
  logits[2 * V + 11] = 60.0f;
  logits[2 * V + 12] = -40.0f;
  const std::vector<int32_t> targets = {17, 49152 + 3, 12};
  const float scale = 0.25f;
  std::vector<float> grad = logits;
  const double total = cross_entropy_forward_backward(grad.data(), targets.data(), rows, V, scale, true);
  double expected_total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits.data() + r * V;
    double mx = row[0], z = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(row[v]));
    for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
    const double nll = std::log(z) + mx - row[targets[r]];
    expected_total += nll;
    EXPECT_NEAR(token_nll(row, V, targets[r]), nll, 1e-6 * std::max(1.0, nll)) << "row " << r;
    double worst = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double g = scale * (std::exp(row[v] - mx) / z - (v == targets[r] ? 1.0 : 0.0));
      worst = std::max(worst, std::abs(grad[r * V + v] - g));
    }
    EXPECT_LE(worst, 1e-6 * scale) << "row " << r;
  }
  EXPECT_NEAR(total, expected_total, 1e-6 * expected_total);
  EXPECT_GT(expected_total, 100.0);  // the underflowing row counts in full
}

}  // namespace
}  // namespace difftx
