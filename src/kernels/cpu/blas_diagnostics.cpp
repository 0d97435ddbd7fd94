#include "kernels/cpu/blas_diagnostics.h"

#include <cblas.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cstdlib>

namespace difftx {

CpuVectorFeatures cpu_vector_features() {
  CpuVectorFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = f.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
  return f;
}

std::string openblas_corename() {
  const char* name = openblas_get_corename();
  return name == nullptr ? std::string() : std::string(name);
}

std::string openblas_kernel_advice(std::string_view corename, const char* coretype_env, CpuVectorFeatures cpu) {
  if (coretype_env != nullptr && coretype_env[0] != '\0') return {};
  if (!cpu.avx2_fma || corename.empty()) return {};
  // OpenBLAS's x86-64 kernel sets built on AVX2/FMA or AVX-512 (names as openblas_get_corename
  // spells them, compared without case); anything else on an AVX2 CPU is a fallback.
  constexpr std::array<std::string_view, 5> kFast = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"};
  std::string lower;
  for (char c : corename) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (auto fast : kFast)
    if (lower == fast) return {};
  const char* suggested = cpu.avx512_bf16 ? "Cooperlake" : cpu.avx512 ? "SkylakeX" : "Haswell";
  const char* isa = cpu.avx512 ? "AVX-512" : "AVX2";
  return fmt::format(
      "OpenBLAS runs the dense products on its {} kernels, which do not use this CPU's {}: they can be "
      "several times slower (3.5x measured on an AVX-512 Xeon). Set OPENBLAS_CORETYPE={} to use faster "
      "ones (README, Speed), or OPENBLAS_CORETYPE={} to keep these without this warning.",
      corename, isa, suggested, corename);
}

void warn_about_slow_openblas_kernels() {
  std::string advice =
      openblas_kernel_advice(openblas_corename(), std::getenv("OPENBLAS_CORETYPE"), cpu_vector_features());
  if (!advice.empty()) spdlog::warn("{}", advice);
}

}  // namespace difftx
