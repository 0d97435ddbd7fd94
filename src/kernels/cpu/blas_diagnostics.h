// Which kernels OpenBLAS runs the dense products on, and a warning when they are far slower than
// the CPU allows. Debian 12's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its kernel set when it loads,
// from the CPU model; on a model newer than the library it falls back to its generic Prescott
// (SSE3) kernels, measured 3.5x slower for sgemm on an Emerald Rapids Xeon than its own Cooperlake
// kernels (bench/NOTES.md, "The machine's OpenBLAS"). The user names a set with the environment
// variable OPENBLAS_CORETYPE, read by OpenBLAS at load time; difftx never sets it (a wrong set can
// compute wrong results on some processors), it only says so.
#pragma once

#include <string>
#include <string_view>

namespace difftx {

// The vector instructions that OpenBLAS's faster x86-64 kernel sets need.
struct CpuVectorFeatures {
  bool avx2_fma = false;     // AVX2 and FMA3: Haswell and Zen kernels
  bool avx512 = false;       // AVX-512 F, BW, DQ, VL: SkylakeX kernels
  bool avx512_bf16 = false;  // AVX-512 with BF16: Cooperlake kernels
};

// This CPU's features (cpuid); all false on other architectures.
CpuVectorFeatures cpu_vector_features();

// openblas_get_corename(): the kernel set OpenBLAS chose, e.g. "Haswell", "Cooperlake", "Prescott".
std::string openblas_corename();

// The warning for a kernel set without AVX2 on a CPU that has it, naming the best set for the CPU
// (Cooperlake, SkylakeX or Haswell); empty when there is nothing to say: the set uses AVX2 or
// AVX-512, the CPU has no AVX2, or OPENBLAS_CORETYPE is set (coretype_env non-null and non-empty:
// the user chose; an empty value does not name a set).
std::string openblas_kernel_advice(std::string_view corename, const char* coretype_env, CpuVectorFeatures cpu);

// Logs openblas_kernel_advice for this process (spdlog warn) when it is not empty.
void warn_about_slow_openblas_kernels();

}  // namespace difftx
