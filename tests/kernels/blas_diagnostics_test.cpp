// openblas_kernel_advice (kernels/cpu/blas_kernels.h): a warning exactly when OpenBLAS runs a kernel
// set without AVX2 on a CPU that has AVX2, unless the user named the set; it suggests the best set
// for the CPU's features.
#include "kernels/cpu/blas_diagnostics.h"

#include <gtest/gtest.h>

#include <string>

namespace difftx {
namespace {

constexpr CpuVectorFeatures kNone{};
constexpr CpuVectorFeatures kAvx2{true, false, false};
constexpr CpuVectorFeatures kAvx512{true, true, false};
constexpr CpuVectorFeatures kAvx512Bf16{true, true, true};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(OpenblasKernelAdvice, GenericKernelsOnAVectorCpuSuggestTheBestSet) {
  std::string bf16 = openblas_kernel_advice("Prescott", nullptr, kAvx512Bf16);
  EXPECT_TRUE(contains(bf16, "its Prescott kernels")) << bf16;
  EXPECT_TRUE(contains(bf16, "AVX-512")) << bf16;
  EXPECT_TRUE(contains(bf16, "OPENBLAS_CORETYPE=Cooperlake to use faster")) << bf16;
  EXPECT_TRUE(contains(bf16, "OPENBLAS_CORETYPE=Prescott to keep these")) << bf16;

  std::string avx512 = openblas_kernel_advice("Prescott", nullptr, kAvx512);
  EXPECT_TRUE(contains(avx512, "OPENBLAS_CORETYPE=SkylakeX to use faster")) << avx512;

  std::string avx2 = openblas_kernel_advice("Prescott", nullptr, kAvx2);
  EXPECT_TRUE(contains(avx2, "this CPU's AVX2")) << avx2;
  EXPECT_TRUE(contains(avx2, "OPENBLAS_CORETYPE=Haswell to use faster")) << avx2;

  // Any set older than AVX2 counts, not only the fallback.
  for (const char* old : {"Sandybridge", "Nehalem", "Core2", "Bulldozer"}) {
    std::string advice = openblas_kernel_advice(old, nullptr, kAvx2);
    EXPECT_TRUE(contains(advice, std::string("its ") + old + " kernels")) << old << ": " << advice;
  }
}

TEST(OpenblasKernelAdvice, SilentForVectorSetsOldCpusAndAChoiceTheUserMade) {
  for (const char* fast : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "COOPERLAKE", "zen"})
    EXPECT_EQ(openblas_kernel_advice(fast, nullptr, kAvx512Bf16), "") << fast;
  // A CPU without AVX2 has nothing faster to offer.
  EXPECT_EQ(openblas_kernel_advice("Prescott", nullptr, kNone), "");
  EXPECT_EQ(openblas_kernel_advice("", nullptr, kAvx512Bf16), "");
  // OPENBLAS_CORETYPE set: the user chose (even the slow set); set but empty names nothing.
  EXPECT_EQ(openblas_kernel_advice("Prescott", "Prescott", kAvx512Bf16), "");
  EXPECT_EQ(openblas_kernel_advice("Prescott", "Haswell", kAvx512Bf16), "");
  EXPECT_NE(openblas_kernel_advice("Prescott", "", kAvx512Bf16), "");
}

TEST(OpenblasKernelAdvice, ThisProcessHasAKernelSetAndNestedFeatures) {
  EXPECT_FALSE(openblas_corename().empty());
  CpuVectorFeatures cpu = cpu_vector_features();
  EXPECT_TRUE(!cpu.avx512_bf16 || cpu.avx512);
  EXPECT_TRUE(!cpu.avx512 || cpu.avx2_fma);
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
  EXPECT_TRUE(cpu.avx512);  // compiled for this CPU with -march=native
#endif
#if defined(__AVX2__) && defined(__FMA__)
  EXPECT_TRUE(cpu.avx2_fma);
#endif
}

}  // namespace
}  // namespace difftx
