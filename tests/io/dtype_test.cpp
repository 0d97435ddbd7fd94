#include "io/dtype.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>

#ifdef __F16C__
#include <immintrin.h>
#endif

namespace difftx {
namespace {

TEST(DType, NamesAndSizes) {
  EXPECT_EQ(dtype_from_name("F32"), DType::F32);
  EXPECT_EQ(dtype_from_name("BF16"), DType::BF16);
  EXPECT_EQ(dtype_from_name("I64"), DType::I64);
  EXPECT_FALSE(dtype_from_name("F31").has_value());
  EXPECT_FALSE(dtype_from_name("f32").has_value());  // safetensors names are upper case
  EXPECT_EQ(dtype_size(DType::F16), 2u);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_TRUE(dtype_is_loadable(DType::BF16));
  EXPECT_FALSE(dtype_is_loadable(DType::I8));
  EXPECT_EQ(dtype_from_cli_name("bf16"), DType::BF16);
  EXPECT_EQ(dtype_from_torch_name("float16"), DType::F16);
  EXPECT_FALSE(dtype_from_cli_name("int8").has_value());
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 0x3f808000 is exactly halfway between 0x3f80 and 0x3f81: ties go to the even 0x3f80.
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);
  // 0x3f818000 is halfway between 0x3f81 and 0x3f82: ties go to the even 0x3f82.
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  // Every bf16 value survives a round trip.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), h) << h;
  }
}

TEST(DType, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);                 // rounds to infinity
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);                 // largest finite
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);    // tie to even: zero
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
}

#ifdef __F16C__
TEST(DType, F16MatchesHardwareConversion) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2'000'000; ++i) {
    float f = std::bit_cast<float>(bits(rng));
    if (std::isnan(f)) continue;
    uint16_t hw = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
    ASSERT_EQ(f32_to_f16(f), hw) << f;
  }
}
#endif

TEST(DType, BufferConversions) {
  const float values[] = {0.0f, -1.5f, 3.140625f, 1e-3f, 65504.0f};
  std::byte buffer[sizeof(values)];
  float back[5];
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    dtype_from_f32(t, values, buffer, 5);
    dtype_to_f32(t, buffer, back, 5);
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(back[i], values[i], std::abs(values[i]) * 1e-2) << dtype_name(t);
  }
  dtype_from_f32(DType::F32, values, buffer, 5);
  EXPECT_EQ(std::memcmp(buffer, values, sizeof(values)), 0);
}

}  // namespace
}  // namespace difftx
