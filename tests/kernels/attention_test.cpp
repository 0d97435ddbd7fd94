// The tiled attention kernel against a direct double-precision evaluation of the definition.
#include "kernels/cpu/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace difftx {
namespace {

struct Case {
  int64_t B, T, S, H, KV, d, window;
  bool padding;
  bool packed = false;  // three documents per row (segment ids 1, 2, 3)
};

// out[b,t,h,:] = sum_s softmax_s(q·k_s * scale | visible) v_s, in double.
std::vector<double> naive(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                          const std::vector<float>& v, const std::vector<int32_t>& valid, int64_t cap, float scale) {
  std::vector<double> out(c.B * c.T * c.H * c.d, 0.0);
  const int64_t G = c.H / c.KV;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t h = 0; h < c.H; ++h) {
        const int64_t i = c.S - c.T + t, kvh = h / G;
        std::vector<double> w(c.S, 0.0);
        double mx = -INFINITY;
        for (int64_t s = 0; s < c.S; ++s) {
          bool visible = s <= i && (c.window == 0 || i - s < c.window) && valid[b * cap + s] != 0 && valid[b * cap + s] == valid[b * cap + i];
          if (!visible) {
            w[s] = -INFINITY;
            continue;
          }
          double dot = 0;
          for (int64_t x = 0; x < c.d; ++x)
            dot += double(q[((b * c.T + t) * c.H + h) * c.d + x]) * k[((b * c.KV + kvh) * cap + s) * c.d + x];
          w[s] = dot * scale;
          mx = std::max(mx, w[s]);
        }
        if (mx == -INFINITY) continue;
        double sum = 0;
        for (auto& x : w) sum += (x = x == -INFINITY ? 0.0 : std::exp(x - mx));
        for (int64_t s = 0; s < c.S; ++s)
          for (int64_t x = 0; x < c.d; ++x)
            out[((b * c.T + t) * c.H + h) * c.d + x] += w[s] / sum * v[((b * c.KV + kvh) * cap + s) * c.d + x];
      }
  return out;
}

class AttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionTest, MatchesDefinition) {
  const Case c = GetParam();
  const int64_t cap = c.S + 3;  // capacity larger than the valid length
  std::mt19937 rng(42);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> q(c.B * c.T * c.H * c.d), k(c.B * c.KV * cap * c.d), v(k.size());
  for (auto& x : q) x = 2.0f * n(rng);
  for (auto& x : k) x = n(rng);
  for (auto& x : v) x = n(rng);
  std::vector<int32_t> valid(c.B * cap, 1);
  if (c.packed)
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t s = 0; s < c.S; ++s) valid[b * cap + s] = 1 + int32_t(s * 3 / c.S);
  if (c.padding)
    for (int64_t s = 0; s < std::min<int64_t>(3, c.S); ++s) valid[(c.B - 1) * cap + s] = 0;  // left padding, last row
  AttentionShape sh{c.B, c.T, c.S, cap, c.H, c.KV, c.KV, c.d, c.window};
  const float scale = 1.0f / std::sqrt(float(c.d));
  std::vector<float> out(q.size(), 123.0f);
  attention_forward(sh, q.data(), c.H * c.d, k.data(), v.data(), valid.data(), scale, out.data(), c.H * c.d);
  auto ref = naive(c, q, k, v, valid, cap, scale);
  double max_err = 0;
  for (size_t i = 0; i < out.size(); ++i) max_err = std::max(max_err, std::abs(out[i] - ref[i]));
  EXPECT_LT(max_err, 2e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest,
                         ::testing::Values(Case{1, 5, 5, 2, 2, 8, 0, false},      // MHA prefill
                                           Case{2, 70, 70, 4, 2, 16, 0, true},    // GQA, several tiles, padding
                                           Case{1, 1, 40, 6, 3, 8, 0, false},     // decode step with a past
                                           Case{2, 7, 19, 4, 1, 8, 0, true},      // chunk after a past, MQA
                                           Case{1, 50, 50, 2, 1, 8, 6, false},    // sliding window
                                           Case{1, 3, 30, 2, 2, 8, 4, false},     // window with a past
                                           Case{1, 4, 4, 2, 2, 8, 0, true},       // query rows that see nothing
                                           Case{2, 75, 75, 4, 2, 8, 0, false, true},   // packed documents
                                           // head widths of the AVX-512 few-row paths (decode, last tiles):
                                           Case{1, 1, 83, 6, 2, 64, 0, false},    // decode, d 64, keys not a multiple of 4
                                           // decoding with the keys split into chunks (merged exactly):
                                           Case{1, 1, 301, 9, 3, 64, 0, false},   // SmolLM2's heads
                                           Case{2, 1, 260, 4, 1, 64, 0, true},    // MQA, padding
                                           Case{1, 1, 300, 4, 2, 64, 200, false}, // sliding window
                                           Case{1, 1, 290, 4, 1, 8, 0, false, true},  // chunks of other documents: all masked
                                           Case{2, 3, 46, 4, 2, 128, 0, true},    // chunk after a past, d 128
                                           Case{1, 37, 37, 2, 1, 32, 0, false}));  // d 32: scores path, plain value loop

TEST(Attention, QueryThatSeesNoKeyGetsZeros) {
  AttentionShape sh{1, 2, 2, 2, 1, 1, 1, 4, 0};
  std::vector<float> q(8, 1.0f), k(8, 1.0f), v(8, 5.0f), out(8, -1.0f);
  std::vector<int32_t> valid = {0, 1};
  attention_forward(sh, q.data(), 4, k.data(), v.data(), valid.data(), 0.5f, out.data(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], 0.0f);  // query 0 sees only the padding key 0
  for (int i = 4; i < 8; ++i) EXPECT_FLOAT_EQ(out[i], 5.0f);
}

}  // namespace
}  // namespace difftx
