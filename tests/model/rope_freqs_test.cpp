// RoPE frequency tables for each rope_scaling type, against values worked out from the formulas.
#include "model/rope_freqs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace difftx {
namespace {

ModelConfig config(int64_t d, double theta) {
  ModelConfig c;
  c.head_dim = d;
  c.rope_theta = theta;
  c.max_position_embeddings = 64;
  return c;
}

TEST(RopeFreqs, DefaultIsThetaPower) {
  auto f = rope_freqs(config(8, 10000.0), 10);
  ASSERT_EQ(f.inv_freq.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(f.inv_freq[i], float(std::pow(10000.0, -2.0 * i / 8)));
  EXPECT_EQ(f.attention_factor, 1.0f);
}

TEST(RopeFreqs, LinearDividesByFactor) {
  auto c = config(8, 10000.0);
  c.rope_scaling.type = RopeType::linear;
  c.rope_scaling.factor = 4.0;
  auto f = rope_freqs(c, 10);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(f.inv_freq[i], float(std::pow(10000.0, -2.0 * i / 8) / 4));
}

TEST(RopeFreqs, DynamicScalesOnlyBeyondMaxPositions) {
  auto c = config(8, 10000.0);
  c.rope_scaling.type = RopeType::dynamic;
  c.rope_scaling.factor = 2.0;
  auto inside = rope_freqs(c, 64);
  EXPECT_FLOAT_EQ(inside.inv_freq[1], float(std::pow(10000.0, -0.25)));
  auto beyond = rope_freqs(c, 128);
  double theta = 10000.0 * std::pow(2.0 * 128 / 64 - 1.0, 8.0 / 6.0);
  EXPECT_FLOAT_EQ(beyond.inv_freq[1], float(std::pow(theta, -0.25)));
}

TEST(RopeFreqs, Llama3HasThreeBands) {
  // d=12, theta 5e5, L0=64, low 1, high 4: wavelengths 2*pi*theta^(2i/12) split into the bands.
  auto c = config(12, 500000.0);
  c.rope_scaling.type = RopeType::llama3;
  c.rope_scaling.factor = 4.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 64;
  auto f = rope_freqs(c, 10);
  for (int i = 0; i < 6; ++i) {
    double base = std::pow(500000.0, -2.0 * i / 12), wavelen = 2 * std::numbers::pi / base, expected;
    if (wavelen < 16) expected = base;
    else if (wavelen > 64) expected = base / 4;
    else {
      double s = (64 / wavelen - 1.0) / 3.0;
      expected = (1 - s) * base / 4 + s * base;
    }
    EXPECT_FLOAT_EQ(f.inv_freq[i], float(expected)) << i;
  }
  EXPECT_FLOAT_EQ(f.inv_freq[0], 1.0f);                                         // unchanged band
  EXPECT_FLOAT_EQ(f.inv_freq[5], float(std::pow(500000.0, -10.0 / 12) / 4));    // divided band
}

TEST(RopeFreqs, YarnRampAndAttentionFactor) {
  auto c = config(16, 10000.0);
  c.rope_scaling.type = RopeType::yarn;
  c.rope_scaling.factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 16;
  auto f = rope_freqs(c, 10);
  EXPECT_FLOAT_EQ(f.attention_factor, float(0.1 * std::log(4.0) + 1.0));
  // low = floor(16 ln(16/(64 pi)) / (2 ln 1e4)) < 0 -> 0; high = ceil(16 ln(16/(2 pi)) / (2 ln 1e4)) = 1.
  // ramp(i) = clamp(i / 1): i=0 keeps the original frequency, i>=1 are divided by the factor.
  EXPECT_FLOAT_EQ(f.inv_freq[0], 1.0f);
  for (int i = 1; i < 8; ++i) EXPECT_FLOAT_EQ(f.inv_freq[i], float(std::pow(10000.0, -2.0 * i / 16) / 4)) << i;
  c.rope_scaling.mscale = 2.0;
  c.rope_scaling.mscale_all_dim = 1.0;
  EXPECT_FLOAT_EQ(rope_freqs(c, 10).attention_factor, float((0.2 * std::log(4.0) + 1) / (0.1 * std::log(4.0) + 1)));
  c.rope_scaling.attention_factor = 0.5;
  EXPECT_FLOAT_EQ(rope_freqs(c, 10).attention_factor, 0.5f);
}

TEST(RopeFreqs, CosSinUseFloat32AnglesAndAttentionFactor) {
  RopeFreqs f;
  f.inv_freq = {1.0f, 0.01f};
  f.attention_factor = 2.0f;
  int64_t pos[] = {0, 3};
  float cos[4], sin[4];
  rope_cos_sin(f, pos, 2, cos, sin);
  EXPECT_FLOAT_EQ(cos[0], 2.0f);
  EXPECT_FLOAT_EQ(sin[1], 0.0f);
  EXPECT_FLOAT_EQ(cos[2], float(2 * std::cos(3.0)));
  EXPECT_FLOAT_EQ(sin[3], float(2 * std::sin(double(3.0f * 0.01f))));
}

}  // namespace
}  // namespace difftx
