// bf16 attention tiles (TileProducts::bf16, kernels/cpu/attention_tiles_bf16.h):
// - the packers give exactly f32_to_bf16 of each value, in the pair layout the product reads;
// - the bf16 tile product equals a double-precision sum of the rounded operands (float32 sums);
// - standard and differential attention, forward and backward, with bf16 products stay within a
//   bf16 tolerance of the float32 kernels run on the same bf16-rounded inputs (what is left is
//   the rounding of P, dA and dS), and differ from them (the bf16 path ran);
// - a call too short to pack for (decoding) keeps the float32 results bit for bit.
// Skipped on builds without AVX512_BF16, where TileProducts::bf16 computes in float32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/bf16.h"
#include "fd_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_backward.h"
#include "kernels/cpu/attention_tiles_bf16.h"
#include "kernels/cpu/diff_attention.h"
#include "kernels/cpu/diff_attention_backward.h"

namespace difftx {
namespace {

using test::randn;

#define SKIP_WITHOUT_BF16_TILES() \
  if (!tiles::bf16::kAvailable) GTEST_SKIP() << "built without AVX512_BF16: bf16 tiles compute in float32"

float rounded(float x) { return bf16_to_f32(f32_to_bf16(x)); }

std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = rounded(x);
  return v;
}

float low(uint32_t pair) { return bf16_to_f32(static_cast<uint16_t>(pair & 0xFFFFu)); }
float high(uint32_t pair) { return bf16_to_f32(static_cast<uint16_t>(pair >> 16)); }

// max |a - b| / max |b|
struct Compared {
  const char* name;
  const std::vector<float>* bf16;
  const std::vector<float>* f32;
  double bound;
};

double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0.0, ref = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;  // also rows that see no key (-inf statistics)
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    ref = std::max(ref, std::fabs(double(b[i])));
  }
  return diff / ref;
}

#if defined(__AVX512BF16__)
TEST(Bf16Tiles, PackersRoundEveryValueIntoItsPair) {
  for (int64_t rows : {1, 5, 36})
    for (int64_t k : {1, 2, 31, 32, 33, 64, 77}) {
      const std::vector<float> src = randn(static_cast<size_t>(rows * (k + 3)), 3);
      // A operand: pairs along each row.
      const int64_t ldd = tiles::bf16::pairs(k) + 2;
      std::vector<uint32_t> a(static_cast<size_t>(rows * ldd), 0xDEADBEEFu);
      tiles::bf16::pack_rows(src.data(), k + 3, rows, k, a.data(), ldd);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t p = 0; p < ldd; ++p) {
          const uint32_t got = a[static_cast<size_t>(r * ldd + p)];
          if (p >= tiles::bf16::pairs(k)) {
            ASSERT_EQ(got, 0xDEADBEEFu) << "wrote past the row's pairs";
            continue;
          }
          ASSERT_EQ(low(got), rounded(src[static_cast<size_t>(r * (k + 3) + 2 * p)]));
          const float want_high = 2 * p + 1 < k ? rounded(src[static_cast<size_t>(r * (k + 3) + 2 * p + 1)]) : 0.0f;
          ASSERT_EQ(high(got), want_high) << "rows " << rows << " k " << k << " pair " << p;
        }
      // B operand: pairs of rows (here k rows of `rows` columns).
      std::vector<uint32_t> b(static_cast<size_t>(tiles::bf16::pairs(k) * rows));
      const std::vector<float> src_b = randn(static_cast<size_t>(k * (rows + 1)), 4);
      tiles::bf16::pack_row_pairs(src_b.data(), rows + 1, k, rows, b.data(), rows);
      for (int64_t p = 0; p < tiles::bf16::pairs(k); ++p)
        for (int64_t j = 0; j < rows; ++j) {
          const uint32_t got = b[static_cast<size_t>(p * rows + j)];
          ASSERT_EQ(low(got), rounded(src_b[static_cast<size_t>(2 * p * (rows + 1) + j)]));
          const float want_high = 2 * p + 1 < k ? rounded(src_b[static_cast<size_t>((2 * p + 1) * (rows + 1) + j)]) : 0.0f;
          ASSERT_EQ(high(got), want_high);
        }
    }
}

// c = A · B in bf16 pairs against a double sum of the rounded values, on shapes that hit every
// register block and tail, accumulating and overwriting with a scale.
TEST(Bf16Tiles, ProductMatchesADoubleSumOfTheRoundedOperands) {
  int checked = 0;
  for (int64_t m : {1, 6, 7, 36})
    for (int64_t n : {1, 17, 64, 65, 130})
      for (int64_t kdim : {1, 2, 63, 64, 300})
        for (bool overwrite : {false, true}) {
          const float alpha = overwrite ? 0.125f : 1.0f;
          const int64_t kp = tiles::bf16::pairs(kdim);
          const std::vector<float> a = randn(static_cast<size_t>(m * kdim), 5), b = randn(static_cast<size_t>(kdim * n), 6);
          std::vector<uint32_t> ap(static_cast<size_t>(m * kp)), bp(static_cast<size_t>(kp * n));
          tiles::bf16::pack_rows(a.data(), kdim, m, kdim, ap.data(), kp);
          tiles::bf16::pack_row_pairs(b.data(), n, kdim, n, bp.data(), n);
          std::vector<float> c = randn(static_cast<size_t>(m * n), 7);
          const std::vector<float> c0 = c;
          tiles::avx512::product_of<tiles::avx512::Bf16PairElements>(ap.data(), kp, 1, bp.data(), n, m, n, kp, c.data(),
                                                                     n, overwrite, alpha);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              double sum = 0.0, magnitude = 0.0;
              for (int64_t k = 0; k < kdim; ++k) {
                const double term = double(rounded(a[i * kdim + k])) * rounded(b[k * n + j]);
                sum += term;
                magnitude += std::fabs(term);
              }
              const size_t at = static_cast<size_t>(i * n + j);
              const double want = (overwrite ? 0.0 : c0[at]) + alpha * sum;
              ASSERT_NEAR(c[at], want, 1e-5 * (1.0 + alpha * magnitude + std::fabs(c0[at])))
                  << "m " << m << " n " << n << " k " << kdim << " overwrite " << overwrite;
              ++checked;
            }
        }
  EXPECT_GT(checked, 100000);
}

TEST(Bf16Tiles, TransposedWeightedRowsMatchADoubleSum) {
  for (int64_t rows : {1, 7, 36})
    for (int64_t n : {3, 64, 101}) {
      const int64_t d = 64, lda = 80;
      const std::vector<float> p = randn(static_cast<size_t>(rows * n), 8), a = randn(static_cast<size_t>(rows * lda), 9);
      std::vector<float> out = randn(static_cast<size_t>(n * d), 10);
      const std::vector<float> out0 = out;
      std::vector<uint32_t> scratch(static_cast<size_t>(tiles::bf16::transposed_scratch_size(rows, n, d)));
      tiles::bf16::weighted_rows_transposed(p.data(), rows, n, a.data(), lda, d, out.data(), d, scratch.data());
      for (int64_t j = 0; j < n; ++j)
        for (int64_t x = 0; x < d; ++x) {
          double sum = out0[static_cast<size_t>(j * d + x)], magnitude = std::fabs(sum);
          for (int64_t r = 0; r < rows; ++r) {
            const double term = double(rounded(p[r * n + j])) * rounded(a[r * lda + x]);
            sum += term;
            magnitude += std::fabs(term);
          }
          ASSERT_NEAR(out[static_cast<size_t>(j * d + x)], sum, 1e-5 * (1.0 + magnitude)) << rows << " " << n;
        }
    }
}
#endif

struct Shape {
  const char* name;
  int64_t B, T, past, H, KV, d, window;
  bool padding;
};

const Shape kShapes[] = {
    {"gqa_past", 2, 50, 13, 4, 2, 64, 0, false},
    {"mha_window_odd", 1, 77, 0, 2, 2, 64, 17, false},
    {"gqa_padded_d40", 2, 40, 5, 4, 1, 40, 0, true},
};

struct Inputs {
  AttentionShape sh;
  std::vector<float> q, k, v;
  std::vector<int32_t> segments;
  Inputs(const Shape& s, int64_t v_heads, bool round) {
    const int64_t S = s.past + s.T;
    sh = AttentionShape{s.B, s.T, S, S, s.H, s.KV, v_heads, s.d, s.window};
    q = randn(static_cast<size_t>(s.B * s.T * s.H * s.d), 21);
    k = randn(static_cast<size_t>(s.B * s.KV * S * s.d), 22);
    v = randn(static_cast<size_t>(s.B * v_heads * S * s.d), 23);
    if (round) q = rounded(q), k = rounded(k), v = rounded(v);
    segments.assign(static_cast<size_t>(s.B * S), 1);
    if (s.padding) std::fill(segments.begin(), segments.begin() + 3, 0);  // left padding of batch row 0
  }
};

class Bf16AttentionTest : public ::testing::TestWithParam<Shape> {};

TEST_P(Bf16AttentionTest, StandardForwardAndBackwardNearFloat32) {
  SKIP_WITHOUT_BF16_TILES();
  const Shape s = GetParam();
  const Inputs in(s, s.KV, /*round=*/true);
  const float scale = 1.0f / std::sqrt(float(s.d));
  const int64_t rows = s.B * s.T * s.H;
  std::vector<float> out32(static_cast<size_t>(rows * s.d)), out16(out32.size());
  std::vector<float> m32(static_cast<size_t>(rows)), l32(m32.size()), m16(m32.size()), l16(m32.size());
  attention_forward(in.sh, in.q.data(), s.H * s.d, in.k.data(), in.v.data(), in.segments.data(), scale, out32.data(),
                    s.H * s.d, m32.data(), l32.data(), TileProducts::f32);
  attention_forward(in.sh, in.q.data(), s.H * s.d, in.k.data(), in.v.data(), in.segments.data(), scale, out16.data(),
                    s.H * s.d, m16.data(), l16.data(), TileProducts::bf16);
  const double forward_err = relative_error(out16, out32);
  std::printf("[ bf16     ] %-16s standard forward max|diff|/max|ref| = %.3g\n", s.name, forward_err);
  EXPECT_LT(forward_err, 1e-2);
  EXPECT_GT(forward_err, 1e-6) << "the bf16 tiles did not run";
  // q, k rounded already: the scores are float32 sums of exact products, so the statistics agree
  // to float32 rounding.
  EXPECT_LT(relative_error(m16, m32), 1e-5);
  EXPECT_LT(relative_error(l16, l32), 1e-4);

  const std::vector<float> d_out = rounded(randn(out32.size(), 24));
  std::vector<float> dq32(in.q.size(), 0.0f), dk32(in.k.size(), 0.0f), dv32(in.v.size(), 0.0f);
  std::vector<float> dq16(dq32), dk16(dk32), dv16(dv32);
  attention_backward(in.sh, in.q.data(), s.H * s.d, in.k.data(), in.v.data(), in.segments.data(), scale, m32.data(),
                     l32.data(), out32.data(), d_out.data(), {dq32.data(), s.H * s.d, dk32.data(), dv32.data()},
                     TileProducts::f32);
  attention_backward(in.sh, in.q.data(), s.H * s.d, in.k.data(), in.v.data(), in.segments.data(), scale, m16.data(),
                     l16.data(), out16.data(), d_out.data(), {dq16.data(), s.H * s.d, dk16.data(), dv16.data()},
                     TileProducts::bf16);
  for (const Compared& c : {Compared{"dq", &dq16, &dq32, 2e-2}, {"dk", &dk16, &dk32, 2e-2}, {"dv", &dv16, &dv32, 2e-2}}) {
    const double err = relative_error(*c.bf16, *c.f32);
    std::printf("[ bf16     ] %-16s standard %s max|diff|/max|ref| = %.3g\n", s.name, c.name, err);
    EXPECT_LT(err, c.bound) << c.name;
    EXPECT_GT(err, 1e-6) << c.name << ": the bf16 tiles did not run";
  }
}

TEST_P(Bf16AttentionTest, DifferentialForwardAndBackwardNearFloat32) {
  SKIP_WITHOUT_BF16_TILES();
  const Shape s = GetParam();
  for (int64_t value_heads : {1, 2}) {
    const Inputs in(s, s.KV, /*round=*/true);
    const DiffHeadMap map = test::pair_map(s.H, s.KV, value_heads);
    const int64_t Hd = map.n_diff_heads(), w = value_heads * s.d, N = s.B * s.T;
    std::vector<float> weight = randn(static_cast<size_t>(w), 25, 0.5f);
    for (float& x : weight) x += 1.0f;
    DiffAttentionParams p;
    p.scale = 1.0f / std::sqrt(float(s.d));
    p.lambda = 0.6f;
    p.norm = true;
    p.norm_weight = weight.data();
    p.norm_eps = 1e-5f;
    p.out_scale = 0.2f;
    struct Run {
      std::vector<float> out, m, l, a, dq, dk, dv, dweight, square_sums;
      double d_lambda = 0.0;
    };
    const std::vector<float> d_out = rounded(randn(static_cast<size_t>(N * Hd * w), 26));
    auto run = [&](TileProducts products) {
      Run r;
      r.out.resize(static_cast<size_t>(N * Hd * w));
      r.m.resize(static_cast<size_t>(s.B * 2 * Hd * s.T));
      r.l.resize(r.m.size());
      r.a.resize(static_cast<size_t>(N * 2 * Hd * w));
      const DiffAttentionStats stats{r.m.data(), r.l.data(), r.a.data()};
      diff_attention_forward(in.sh, map, p, in.q.data(), s.H * s.d, in.k.data(), in.v.data(), in.segments.data(),
                             r.out.data(), Hd * w, &stats, products);
      r.dq.assign(in.q.size(), 0.0f);
      r.dk.assign(in.k.size(), 0.0f);
      r.dv.assign(in.v.size(), 0.0f);
      r.dweight.assign(static_cast<size_t>(w), 0.0f);
      r.d_lambda = diff_attention_backward(in.sh, map, p, in.q.data(), s.H * s.d, in.k.data(), in.v.data(),
                                           in.segments.data(), stats, d_out.data(),
                                           {r.dq.data(), s.H * s.d, r.dk.data(), r.dv.data(), r.dweight.data()},
                                           products);
      r.square_sums.resize(r.m.size());
      diff_attention_square_sums(in.sh, map, p.scale, in.q.data(), s.H * s.d, in.k.data(), in.segments.data(), stats,
                                 r.square_sums.data(), products);
      return r;
    };
    const Run f32 = run(TileProducts::f32), b16 = run(TileProducts::bf16);
    for (const Compared& c :
         {Compared{"out", &b16.out, &f32.out, 1e-2}, {"dq", &b16.dq, &f32.dq, 3e-2}, {"dk", &b16.dk, &f32.dk, 3e-2},
          {"dv", &b16.dv, &f32.dv, 2e-2}, {"dweight", &b16.dweight, &f32.dweight, 2e-2}}) {
      const double err = relative_error(*c.bf16, *c.f32);
      std::printf("[ bf16     ] %-16s diff (value heads %ld) %s max|diff|/max|ref| = %.3g\n", s.name,
                  static_cast<long>(value_heads), c.name, err);
      EXPECT_LT(err, c.bound) << c.name << " value heads " << value_heads;
      EXPECT_GT(err, 1e-6) << c.name << ": the bf16 tiles did not run";
    }
    EXPECT_NEAR(b16.d_lambda, f32.d_lambda, 2e-2 * std::fabs(f32.d_lambda) + 1e-3);
    // The statistics come from the same float32 sums of exact products; the square sums recompute P
    // from them, as the forward computed it.
    EXPECT_LT(relative_error(b16.m, f32.m), 1e-5);
    EXPECT_LT(relative_error(b16.square_sums, f32.square_sums), 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Bf16AttentionTest, ::testing::ValuesIn(kShapes),
                         [](const ::testing::TestParamInfo<Shape>& info) { return std::string(info.param.name); });

// A query tile too short to pack the cache for (decoding, a few new tokens) keeps float32 tiles.
TEST(Bf16AttentionShortCalls, KeepFloat32Results) {
  SKIP_WITHOUT_BF16_TILES();
  const Shape s{"short", 1, 3, 40, 4, 2, 64, 0, false};
  const Inputs in(s, s.KV, /*round=*/false);
  const float scale = 0.125f;
  std::vector<float> out32(static_cast<size_t>(s.T * s.H * s.d)), out16(out32.size());
  std::vector<float> m(static_cast<size_t>(s.T * s.H)), l(m.size());
  attention_forward(in.sh, in.q.data(), s.H * s.d, in.k.data(), in.v.data(), nullptr, scale, out32.data(), s.H * s.d,
                    m.data(), l.data(), TileProducts::f32);
  attention_forward(in.sh, in.q.data(), s.H * s.d, in.k.data(), in.v.data(), nullptr, scale, out16.data(), s.H * s.d,
                    m.data(), l.data(), TileProducts::bf16);
  EXPECT_EQ(0, std::memcmp(out32.data(), out16.data(), sizeof(float) * out32.size()));
}

}  // namespace
}  // namespace difftx
