#include "common/huge_pages.h"

#include <sys/mman.h>

namespace difftx {

HugePageRange huge_page_range(const void* data, std::size_t bytes) {
  if (data == nullptr || bytes < kHugePageMinBuffer) return {};
  const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(data), last = first + bytes;
  const std::uintptr_t begin = (first + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const std::uintptr_t end = last / kHugePageBytes * kHugePageBytes;
  if (end <= begin) return {};
  return {begin, static_cast<std::size_t>(end - begin)};
}

void advise_huge_pages(void* data, std::size_t bytes) {
#if defined(MADV_HUGEPAGE)
  const HugePageRange r = huge_page_range(data, bytes);
  if (r.bytes > 0) (void)::madvise(reinterpret_cast<void*>(r.begin), r.bytes, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace difftx
