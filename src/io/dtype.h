// Element types of safetensors files and conversions to and from float32.
//
// Names are the safetensors dtype strings. difftx computes in float32 and loads F32, BF16 and F16
// (README, "Numerics and parity with PyTorch"); the other names are known so that a file using them is recognised as a
// valid file with an unsupported tensor rather than as a corrupt one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/bf16.h"

namespace difftx {

enum class DType {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64,
};

std::optional<DType> dtype_from_name(std::string_view name);  // "F32" -> DType::F32
std::string_view dtype_name(DType t);                          // DType::F32 -> "F32"
size_t dtype_size(DType t);                                    // bytes per element
bool dtype_is_loadable(DType t);                               // F32, BF16, F16

// torch dtype names as written in config.json ("float32", "bfloat16", "float16") and the short
// names used on the command line ("f32", "bf16", "f16"). nullopt for anything else.
std::optional<DType> dtype_from_torch_name(std::string_view name);
std::optional<DType> dtype_from_cli_name(std::string_view name);
std::string_view dtype_torch_name(DType t);  // F32 -> "float32"; only for loadable types

// Scalar conversions. float -> f16 rounds to nearest, ties to even (as torch's .to()); the bf16
// ones are in common/bf16.h.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// n elements of type t (little-endian, any alignment) -> float32. t must be loadable.
void dtype_to_f32(DType t, const std::byte* src, float* dst, size_t n);
// n float32 values -> n elements of type t (little-endian). t must be loadable.
void dtype_from_f32(DType t, const float* src, std::byte* dst, size_t n);

}  // namespace difftx
