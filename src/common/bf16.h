// bfloat16 scalars: the upper 16 bits of an IEEE float32. float -> bf16 rounds to nearest, ties to
// even, as torch's .to(torch.bfloat16); a NaN stays a (quiet) NaN.
#pragma once

#include <bit>
#include <cstdint>

namespace difftx {

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

}  // namespace difftx
