// diff_attention_backward (the differential layouts' backward kernel) against finite differences of
// diff_attention_forward: every input it differentiates (q, k, v, the subln weight, lambda).
#include "kernels/cpu/diff_attention_backward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "fd_util.h"
#include "kernels/cpu/diff_attention.h"

namespace difftx {
namespace {

using test::dot;
using test::fd_error;
using test::randn;

struct Case {
  const char* name;
  int64_t B, T, H, KV, d, value_heads, window;
  bool norm, norm_weight;
  float lambda, out_scale;
  bool padding;
};

class DiffAttentionBackward : public ::testing::TestWithParam<Case> {};

TEST_P(DiffAttentionBackward, MatchesFiniteDifferences) {
  const Case c = GetParam();
  const DiffHeadMap map = test::pair_map(c.H, c.KV, c.value_heads);
  const int64_t cap = c.T, Hd = map.n_diff_heads(), w = c.value_heads * c.d;
  auto q = randn(c.B * c.T * c.H * c.d, 11), k = randn(c.B * c.KV * cap * c.d, 12), v = randn(k.size(), 13);
  auto weight = randn(w, 14, 0.5f);
  for (auto& x : weight) x += 1.0f;
  auto cw = randn(c.B * c.T * Hd * w, 15);
  std::vector<int32_t> segments(c.B * cap, 1);
  if (c.padding) segments[(c.B - 1) * cap] = 0;
  const AttentionShape sh{c.B, c.T, c.T, cap, c.H, c.KV, c.KV, c.d, c.window};
  DiffAttentionParams p;
  p.scale = 1.0f / std::sqrt(float(c.d));
  p.lambda = c.lambda;
  p.norm = c.norm;
  p.norm_weight = c.norm_weight ? weight.data() : nullptr;
  p.norm_eps = 1e-5f;
  p.out_scale = c.out_scale;
  std::vector<float> out(c.B * c.T * Hd * w);
  auto loss = [&] {
    diff_attention_forward(sh, map, p, q.data(), c.H * c.d, k.data(), v.data(), segments.data(), out.data(), Hd * w);
    return dot(out, cw);
  };
  std::vector<float> m(c.B * 2 * Hd * c.T), l(m.size()), a(c.B * c.T * 2 * Hd * w);
  const DiffAttentionStats stats{m.data(), l.data(), a.data()};
  diff_attention_forward(sh, map, p, q.data(), c.H * c.d, k.data(), v.data(), segments.data(), out.data(), Hd * w,
                         &stats);
  std::vector<float> dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f), dweight(w, 0.0f);
  const AttentionGrads grads{dq.data(), c.H * c.d, dk.data(), dv.data(), dweight.data()};
  const double d_lambda = diff_attention_backward(sh, map, p, q.data(), c.H * c.d, k.data(), v.data(),
                                                  segments.data(), stats, cw.data(), grads);
  EXPECT_LT(fd_error(q, dq, loss, 2e-3f), 1e-2) << "dq";
  EXPECT_LT(fd_error(k, dk, loss, 2e-3f), 1e-2) << "dk";
  EXPECT_LT(fd_error(v, dv, loss, 2e-3f), 1e-2) << "dv";
  if (c.norm && c.norm_weight) {
    EXPECT_LT(fd_error(weight, dweight, loss, 2e-3f), 1e-2) << "d subln";
  } else {
    for (float g : dweight) EXPECT_EQ(g, 0.0f) << "no weight, no weight gradient";
  }
  std::vector<float> lambda{p.lambda};
  const std::vector<float> analytic{static_cast<float>(d_lambda)};
  auto loss_of_lambda = [&] {
    p.lambda = lambda[0];
    return loss();
  };
  EXPECT_LT(fd_error(lambda, analytic, loss_of_lambda, 2e-3f), 1e-2) << "d lambda = " << d_lambda;
  EXPECT_NE(d_lambda, 0.0);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, DiffAttentionBackward,
    ::testing::Values(
        //   name              B  T   H  KV d  nv win norm  weight lambda out_scale padding
        Case{"seed_subln", 1, 21, 4, 2, 8, 1, 0, true, true, 0.6f, 1.0f, false},
        Case{"no_norm_gqa", 2, 17, 8, 2, 4, 1, 0, false, false, 0.3f, 1.0f, true},
        Case{"diffllama_like", 1, 40, 4, 4, 4, 2, 0, true, false, 0.45f, 0.7f, false},
        Case{"window_two_values", 2, 38, 4, 2, 4, 2, 9, true, true, 0.8f, 0.2f, true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace difftx
