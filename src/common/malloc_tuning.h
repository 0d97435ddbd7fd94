// glibc malloc settings for a process that allocates and frees large activation buffers over and
// over (every forward pass, every training step). By default glibc hands freed blocks of a few MB
// and more back to the kernel, and the next allocation page-faults them in again: ~7 us per 4 KB
// page on a virtual machine (bench/NOTES.md, change 7). difftx keeps them instead.
#pragma once

namespace difftx {

// Sets M_TRIM_THRESHOLD (1 GiB), M_TOP_PAD (256 MiB) and M_MMAP_THRESHOLD (32 MiB, glibc's
// largest) with mallopt, so that freed memory stays in the heap for reuse. The peak RSS is
// unchanged (memory is kept, not added); the RSS after a peak stays there. Does nothing when the
// user set any of MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, MALLOC_MMAP_THRESHOLD_ or
// GLIBC_TUNABLES (their choice wins), or when the C library is not glibc.
void keep_freed_memory();

}  // namespace difftx
