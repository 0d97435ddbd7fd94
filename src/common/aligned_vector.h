// std::vector whose storage starts on a 64-byte cache line. The parameter table puts every
// parameter at a multiple of 64 bytes from the start of its buffer; with the plain allocator the
// start itself is only 16-byte aligned, so every 64-byte load of a weight row spanned two cache
// lines (float32 decoding streamed its matrices at 2/3 of the rate: bench/NOTES.md, change 17).
// Buffers of 4 MiB and more are advised for transparent huge pages (common/huge_pages.h).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

#include "common/huge_pages.h"

namespace difftx {

inline constexpr std::size_t kCacheLine = 64;

template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  constexpr CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    T* p = static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kCacheLine}));
    advise_huge_pages(p, n * sizeof(T));  // before the vector writes its elements
    return p;
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{kCacheLine}); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept {
    return true;
  }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace difftx
