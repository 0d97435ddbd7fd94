// Transparent huge pages (common/huge_pages.h): the advised range is the whole 2 MiB pages inside a
// buffer of at least 4 MiB, and the model's vectors and the CPU backend's buffers carry the advice
// (the kernel marks an advised mapping "hg" in /proc/self/smaps' VmFlags, whatever its THP mode).
#include "common/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>

#include "common/aligned_vector.h"
#include "kernels/cpu/cpu_backend.h"

namespace difftx {
namespace {

constexpr std::uintptr_t kMiB = std::uintptr_t{1} << 20;

const void* at(std::uintptr_t address) { return reinterpret_cast<const void*>(address); }

TEST(HugePages, RangeIsTheWholePagesInsideTheBuffer) {
  // Unaligned start: from the next 2 MiB boundary to the last one inside.
  HugePageRange r = huge_page_range(at(0x1000), 8 * kMiB);
  EXPECT_EQ(r.begin, 2 * kMiB);
  EXPECT_EQ(r.bytes, 6 * kMiB);
  // Aligned at both ends: all of it.
  r = huge_page_range(at(2 * kMiB), 4 * kMiB);
  EXPECT_EQ(r.begin, 2 * kMiB);
  EXPECT_EQ(r.bytes, 4 * kMiB);
  // 4 MiB from 64 bytes past a boundary: one whole page inside.
  r = huge_page_range(at(2 * kMiB + 64), 4 * kMiB);
  EXPECT_EQ(r.begin, 4 * kMiB);
  EXPECT_EQ(r.bytes, 2 * kMiB);
}

TEST(HugePages, SmallBuffersAndNullAreNotAdvised) {
  EXPECT_EQ(huge_page_range(at(2 * kMiB), 4 * kMiB - 1).bytes, 0u);  // below kHugePageMinBuffer
  EXPECT_EQ(huge_page_range(at(2 * kMiB), 0).bytes, 0u);
  EXPECT_EQ(huge_page_range(nullptr, 64 * kMiB).bytes, 0u);
}

// The VmFlags line of the /proc/self/smaps mapping that holds `address`; empty when none does.
std::string vm_flags_of(std::uintptr_t address) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = lo <= address && address < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return {};
}

bool kernel_has_thp() {
  struct stat st {};
  return ::stat("/sys/kernel/mm/transparent_hugepage", &st) == 0;
}

bool advised(std::string flags) { return (flags + " ").find(" hg ") != std::string::npos; }

TEST(HugePages, ModelVectorsAndBackendBuffersAreAdvised) {
  if (!kernel_has_thp()) GTEST_SKIP() << "this kernel has no transparent huge pages";
  AlignedVector<float> weights(size_t{16} << 20, 1.0f);  // 64 MiB, as the model's weights
  const HugePageRange w = huge_page_range(weights.data(), weights.size() * sizeof(float));
  ASSERT_GT(w.bytes, 0u);
  const std::string wf = vm_flags_of(w.begin);
  ASSERT_FALSE(wf.empty()) << "no mapping in /proc/self/smaps holds the weights";
  EXPECT_TRUE(advised(wf)) << wf;

  auto backend = make_cpu_backend();
  Buffer activations = backend->alloc(64 * kMiB);
  const HugePageRange a = huge_page_range(activations.as<float>(), activations.bytes());
  ASSERT_GT(a.bytes, 0u);
  EXPECT_TRUE(advised(vm_flags_of(a.begin))) << vm_flags_of(a.begin);
  EXPECT_EQ(activations.as<float>()[1000], 0.0f);  // still zeroed
}

}  // namespace
}  // namespace difftx
