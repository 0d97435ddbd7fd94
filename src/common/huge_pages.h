// Transparent huge pages for large host buffers (the model's weights, the training state, the CPU
// backend's activations and KV caches). Linux backs a range with 2 MiB pages only where its
// `transparent_hugepage/enabled` setting is `always`, or `madvise` and the range was advised
// with MADV_HUGEPAGE (Debian's default is `madvise`). Decoding streams every weight once per token;
// with 4 KiB pages that is a TLB miss every 64 cache lines: one token's float32 matrices of the
// SmolLM2-135M shape read 6-8% faster from huge pages (bench/NOTES.md, change 28).
#pragma once

#include <cstddef>
#include <cstdint>

namespace difftx {

inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
// Buffers below this are not advised (a huge page would be mostly someone else's data).
inline constexpr std::size_t kHugePageMinBuffer = 2 * kHugePageBytes;

// The whole 2 MiB pages inside [data, data + bytes): {begin, bytes}; bytes 0 when there are none
// or the buffer is below kHugePageMinBuffer.
struct HugePageRange {
  std::uintptr_t begin = 0;
  std::size_t bytes = 0;
};
HugePageRange huge_page_range(const void* data, std::size_t bytes);

// Advises the kernel to back huge_page_range(data, bytes) with huge pages. Call it before the
// memory is first written (pages already present stay 4 KiB until the kernel's background
// collapse). A hint: an error (a kernel without THP) changes nothing and is ignored.
void advise_huge_pages(void* data, std::size_t bytes);

}  // namespace difftx
