// The fused differential-attention kernel against a naive two-softmax evaluation in double.
#include "kernels/cpu/diff_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace difftx {
namespace {

struct Case {
  const char* name;
  int64_t B, T, S, n_q, n_kv, d, n_diff, value_heads, window;
  bool padding, norm, norm_weight;
  float lambda, out_scale;
  bool packed = false;
  bool grouped = false;  // the heads of a GQA group share key and value heads, as the real layouts do
};

// A random but valid head map: any q head, any kv head, per diff-head.
DiffHeadMap random_map(const Case& c, std::mt19937& rng) {
  DiffHeadMap m;
  m.value_heads = c.value_heads;
  std::uniform_int_distribution<int32_t> qh(0, int32_t(c.n_q - 1)), kh(0, int32_t(c.n_kv - 1));
  for (int64_t i = 0; i < c.n_diff; ++i) {
    m.q1.push_back(qh(rng));
    m.q2.push_back(qh(rng));
    m.k1.push_back(kh(rng));
    m.k2.push_back(kh(rng));
    for (int64_t h = 0; h < c.value_heads; ++h) m.v.push_back(kh(rng));
  }
  return m;
}

// The map of the llama-differential double layout (model/diff_layout.cpp): diff-head i reads q
// heads i and n_diff + i, key heads i / G and n_kv / 2 + i / G, so consecutive heads form groups.
DiffHeadMap grouped_map(const Case& c) {
  DiffHeadMap m;
  m.value_heads = c.value_heads;
  const int64_t G = c.n_diff / (c.n_kv / 2);
  for (int64_t i = 0; i < c.n_diff; ++i) {
    m.q1.push_back(int32_t(i));
    m.q2.push_back(int32_t(c.n_diff + i));
    m.k1.push_back(int32_t(i / G));
    m.k2.push_back(int32_t(c.n_kv / 2 + i / G));
    for (int64_t h = 0; h < c.value_heads; ++h) m.v.push_back(int32_t((i / G + h) % c.n_kv));
  }
  return m;
}

// One softmax map in double: weights over keys of query row (b, t) with q head qh and key head kh.
std::vector<double> softmax_row(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                                const std::vector<int32_t>& valid, int64_t cap, int64_t b, int64_t t, int64_t qh,
                                int64_t kh, double scale) {
  const int64_t i = c.S - c.T + t;
  std::vector<double> w(c.S, 0.0);
  double mx = -INFINITY;
  for (int64_t s = 0; s < c.S; ++s) {
    bool visible = s <= i && (c.window == 0 || i - s < c.window) && valid[b * cap + s] != 0 && valid[b * cap + s] == valid[b * cap + i];
    if (!visible) {
      w[s] = -INFINITY;
      continue;
    }
    double dot = 0;
    for (int64_t x = 0; x < c.d; ++x) dot += double(q[((b * c.T + t) * c.n_q + qh) * c.d + x]) * k[((b * c.n_kv + kh) * cap + s) * c.d + x];
    w[s] = dot * scale;
    mx = std::max(mx, w[s]);
  }
  double sum = 0;
  for (auto& x : w) sum += (x = (x == -INFINITY || mx == -INFINITY) ? 0.0 : std::exp(x - mx));
  for (auto& x : w) x = sum > 0 ? x / sum : 0.0;
  return w;
}

class DiffAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(DiffAttentionTest, MatchesNaiveTwoSoftmax) {
  const Case c = GetParam();
  const int64_t cap = c.S + 5, w = c.value_heads * c.d;
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> q(c.B * c.T * c.n_q * c.d), k(c.B * c.n_kv * cap * c.d), v(k.size()), weight(w);
  for (auto& x : q) x = 1.5f * n(rng);
  for (auto& x : k) x = n(rng);
  for (auto& x : v) x = n(rng);
  for (auto& x : weight) x = 1.0f + 0.2f * n(rng);
  std::vector<int32_t> valid(c.B * cap, 1);
  if (c.packed)
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t s = 0; s < c.S; ++s) valid[b * cap + s] = 1 + int32_t(s * 3 / c.S);
  if (c.padding)
    for (int64_t s = 0; s < std::min<int64_t>(4, c.S); ++s) valid[(c.B - 1) * cap + s] = 0;
  DiffHeadMap map = c.grouped ? grouped_map(c) : random_map(c, rng);
  AttentionShape sh{c.B, c.T, c.S, cap, c.n_q, c.n_kv, c.n_kv, c.d, c.window};
  DiffAttentionParams p;
  p.scale = 1.0f / std::sqrt(float(c.d));
  p.lambda = c.lambda;
  p.norm = c.norm;
  p.norm_weight = c.norm_weight ? weight.data() : nullptr;
  p.norm_eps = 1e-5f;
  p.out_scale = c.out_scale;
  std::vector<float> out(c.B * c.T * c.n_diff * w, 99.0f);
  std::vector<float> m(c.B * 2 * c.n_diff * c.T), l(m.size());
  DiffAttentionStats stats{m.data(), l.data()};
  diff_attention_forward(sh, map, p, q.data(), c.n_q * c.d, k.data(), v.data(), valid.data(), out.data(), c.n_diff * w,
                         &stats);
  // Without statistics (inference; a decoding step then takes the grouped split-key path).
  std::vector<float> out_plain(out.size(), 77.0f);
  diff_attention_forward(sh, map, p, q.data(), c.n_q * c.d, k.data(), v.data(), valid.data(), out_plain.data(),
                         c.n_diff * w);

  double max_err = 0, max_ref = 0;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t i = 0; i < c.n_diff; ++i) {
        auto w1 = softmax_row(c, q, k, valid, cap, b, t, map.q1[i], map.k1[i], p.scale);
        auto w2 = softmax_row(c, q, k, valid, cap, b, t, map.q2[i], map.k2[i], p.scale);
        std::vector<double> o(w, 0.0);
        for (int64_t h = 0; h < c.value_heads; ++h)
          for (int64_t s = 0; s < c.S; ++s)
            for (int64_t x = 0; x < c.d; ++x) {
              double vv = v[((b * c.n_kv + map.v[i * c.value_heads + h]) * cap + s) * c.d + x];
              o[h * c.d + x] += w1[s] * vv - double(c.lambda) * w2[s] * vv;
            }
        double scale = c.out_scale;
        if (c.norm) {
          double ss = 0;
          for (double x : o) ss += x * x;
          scale /= std::sqrt(ss / w + 1e-5);
        }
        for (int64_t x = 0; x < w; ++x) {
          double ref = o[x] * scale * (c.norm_weight ? weight[x] : 1.0);
          double got = out[((b * c.T + t) * c.n_diff + i) * w + x];
          double got_plain = out_plain[((b * c.T + t) * c.n_diff + i) * w + x];
          max_err = std::max({max_err, std::abs(got - ref), std::abs(got_plain - ref)});
          max_ref = std::max(max_ref, std::abs(ref));
        }
      }
  std::printf("[ diffattn ] %-22s max|diff| = %.3g (max|ref| %.3g)\n", c.name, max_err, max_ref);
  EXPECT_LT(max_err, 3e-5 * std::max(1.0, max_ref));
  // Statistics: l is the softmax denominator relative to m; both maps of a visible row have l >= 1.
  for (int64_t at = 0; at < int64_t(m.size()); ++at) {
    if (std::isinf(m[at])) {
      EXPECT_EQ(l[at], 0.0f);
    } else {
      EXPECT_GE(l[at], 1.0f - 1e-5f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DiffAttentionTest,
    ::testing::Values(
        //    name              B  T    S    nq nkv d   nd nv win  pad    norm   w      lambda out_scale
        Case{"double_gqa", 1, 37, 37, 8, 4, 16, 4, 1, 0, false, true, true, 0.7f, 1.0f},
        Case{"split_wide", 2, 130, 130, 4, 2, 8, 2, 2, 0, true, true, true, 0.3f, 1.0f},
        Case{"diffllama_like", 1, 300, 300, 6, 3, 12, 3, 2, 0, false, true, false, 0.45f, 0.6f},
        Case{"no_norm_decode", 2, 1, 77, 4, 2, 8, 2, 1, 0, true, false, false, 1.2f, 1.0f},
        Case{"chunk_after_past", 1, 9, 150, 4, 1, 10, 2, 2, 0, false, true, true, -0.4f, 1.0f},
        Case{"sliding_window", 1, 200, 200, 2, 2, 8, 2, 1, 45, false, false, false, 0.8f, 1.0f},
        Case{"odd_everything", 3, 67, 71, 5, 5, 6, 5, 2, 0, true, true, true, 0.55f, 0.8f},
        Case{"packed_documents", 2, 90, 90, 4, 2, 8, 2, 2, 0, false, true, true, 0.6f, 1.0f, true},
        // head widths of the AVX-512 few-row paths: decode with d 64 (SmolLM2), a chunk with d 128
        Case{"decode_d64", 1, 1, 301, 6, 2, 64, 3, 1, 0, false, true, true, 0.8f, 1.0f},
        Case{"chunk_d128_split", 2, 5, 43, 4, 2, 128, 2, 2, 0, true, true, true, 0.5f, 1.0f},
        // decoding with grouped heads and the keys split into chunks (SmolLM2's double layout first)
        Case{"decode_grouped", 1, 1, 301, 18, 6, 64, 9, 1, 0, false, true, true, 0.8f, 1.0f, false, true},
        Case{"decode_grouped_wide", 2, 1, 200, 8, 4, 16, 4, 2, 0, true, true, false, 0.6f, 0.7f, true, true},
        Case{"decode_grouped_window", 1, 1, 260, 8, 4, 32, 4, 1, 150, false, false, false, 0.4f, 1.0f, false, true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace difftx
