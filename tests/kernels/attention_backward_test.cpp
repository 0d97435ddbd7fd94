// The attention-map backward against finite differences of the forward kernels.
#include "kernels/cpu/attention_backward.h"

#include <gtest/gtest.h>

#include "fd_util.h"

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/diff_attention.h"

namespace difftx {
namespace {

using test::dot;
using test::fd_error;
using test::randn;

struct Case {
  const char* name;
  int64_t B, T, S, H, KV, d, window;
  bool padding;
  bool packed = false;
};

class StandardAttentionBackward : public ::testing::TestWithParam<Case> {};

TEST_P(StandardAttentionBackward, MatchesFiniteDifferences) {
  const Case c = GetParam();
  const int64_t cap = c.S + 2;
  auto q = randn(c.B * c.T * c.H * c.d, 1), k = randn(c.B * c.KV * cap * c.d, 2), v = randn(k.size(), 3);
  auto cw = randn(c.B * c.T * c.H * c.d, 4);
  std::vector<int32_t> valid(c.B * cap, 1);
  if (c.packed)
    for (int64_t s = 0; s < c.S; ++s) valid[s] = 1 + int32_t(s * 3 / c.S);
  if (c.padding) valid[(c.B - 1) * cap + 0] = valid[(c.B - 1) * cap + 1] = 0;
  AttentionShape sh{c.B, c.T, c.S, cap, c.H, c.KV, c.KV, c.d, c.window};
  const float scale = 1.0f / std::sqrt(float(c.d));
  std::vector<float> out(q.size()), m(c.B * c.H * c.T), l(m.size());
  auto loss = [&] {
    attention_forward(sh, q.data(), c.H * c.d, k.data(), v.data(), valid.data(), scale, out.data(), c.H * c.d);
    return dot(out, cw);
  };
  attention_forward(sh, q.data(), c.H * c.d, k.data(), v.data(), valid.data(), scale, out.data(), c.H * c.d, m.data(),
                    l.data());
  AttentionMaps maps;
  for (int32_t h = 0; h < c.H; ++h) {
    maps.q.push_back(h);
    maps.k.push_back(h / int32_t(c.H / c.KV));
    maps.v.push_back(h / int32_t(c.H / c.KV));
  }
  std::vector<float> dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
  AttentionBackwardArgs a;
  a.q = q.data();
  a.q_stride = c.H * c.d;
  a.k = k.data();
  a.v = v.data();
  a.segments = valid.data();
  a.scale = scale;
  a.m = m.data();
  a.l = l.data();
  a.out = out.data();
  a.d_out = cw.data();
  a.dq = dq.data();
  a.dq_stride = c.H * c.d;
  a.dk = dk.data();
  a.dv = dv.data();
  attention_maps_backward({c.B, c.T, c.S, cap, c.H, c.KV, c.KV, c.d, c.window}, maps, a);
  double eq = fd_error(q, dq, loss, 2e-3f), ek = fd_error(k, dk, loss, 2e-3f), ev = fd_error(v, dv, loss, 2e-3f);
  std::printf("[ attn bwd ] %-16s dq %.2g dk %.2g dv %.2g\n", c.name, eq, ek, ev);
  EXPECT_LT(eq, 1e-2);
  EXPECT_LT(ek, 1e-2);
  EXPECT_LT(ev, 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Shapes, StandardAttentionBackward,
                         ::testing::Values(Case{"mha", 1, 5, 5, 2, 2, 4, 0, false},
                                           Case{"gqa_tiles", 1, 70, 70, 2, 1, 2, 0, false},
                                           Case{"padded_batch", 2, 6, 6, 4, 2, 4, 0, true},
                                           Case{"after_past", 1, 3, 9, 2, 2, 4, 0, false},
                                           Case{"window", 1, 40, 40, 2, 2, 4, 5, false},
                                           Case{"packed", 1, 36, 36, 2, 1, 4, 0, false, true}),
                         [](const auto& i) { return std::string(i.param.name); });

// A map whose value is two heads concatenated (width 2d), checked through the differential kernel
// with lambda = 0 and no norm (its output is then exactly map 1).
TEST(AttentionMapsBackward, TwoValueHeads) {
  const int64_t B = 1, T = 40, H = 4, KV = 2, d = 4, cap = T, Hd = 2, w = 2 * d;
  auto q = randn(B * T * H * d, 5), k = randn(B * KV * cap * d, 6), v = randn(k.size(), 7);
  auto cw = randn(B * T * Hd * w, 8);
  DiffHeadMap map;
  map.value_heads = 2;
  for (int32_t i = 0; i < Hd; ++i) {
    map.q1.push_back(i);
    map.q2.push_back(i + 2);
    map.k1.push_back(i);
    map.k2.push_back(1 - i);
    map.v.push_back(i);
    map.v.push_back(1 - i);
  }
  AttentionShape sh{B, T, T, cap, H, KV, KV, d, 0};
  DiffAttentionParams p;
  p.scale = 0.5f;
  p.lambda = 0.0f;
  std::vector<float> out(B * T * Hd * w), m(B * 2 * Hd * T), l(m.size());
  auto loss = [&] {
    diff_attention_forward(sh, map, p, q.data(), H * d, k.data(), v.data(), nullptr, out.data(), Hd * w);
    return dot(out, cw);
  };
  DiffAttentionStats st{m.data(), l.data()};
  diff_attention_forward(sh, map, p, q.data(), H * d, k.data(), v.data(), nullptr, out.data(), Hd * w, &st);
  AttentionMaps maps;
  maps.value_heads = 2;
  maps.q = map.q1;
  maps.k = map.k1;
  maps.v = map.v;
  std::vector<float> dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
  AttentionBackwardArgs a;
  a.q = q.data();
  a.q_stride = H * d;
  a.k = k.data();
  a.v = v.data();
  a.scale = 0.5f;
  a.m = m.data();  // B = 1: the first Hd * T statistics are the first maps'
  a.l = l.data();
  a.out = out.data();
  a.d_out = cw.data();
  a.dq = dq.data();
  a.dq_stride = H * d;
  a.dk = dk.data();
  a.dv = dv.data();
  attention_maps_backward({B, T, T, cap, H, KV, KV, d, 0}, maps, a);
  EXPECT_LT(fd_error(q, dq, loss, 2e-3f), 1e-2);
  EXPECT_LT(fd_error(k, dk, loss, 2e-3f), 1e-2);
  EXPECT_LT(fd_error(v, dv, loss, 2e-3f), 1e-2);
}

}  // namespace
}  // namespace difftx
