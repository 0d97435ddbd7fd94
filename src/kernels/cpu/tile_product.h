// The register-blocked matrix product of the attention kernels' tiles (AVX-512F builds only):
//   c[i, j] = (overwrite ? 0 : c[i, j]) + alpha * sum_k A(i, k) * b[k * ldb + j]
// for i < m, j < n, k < kdim, where A(i, k) = a[i * rsa + k * csa]: with (rsa, csa) = (lda, 1) A
// is read row by row, with (1, lda) as the transpose of a row-major matrix, so one kernel does
// P·V, P^T·Q and Q·K^T (K^T stored transposed). Internal to src/kernels/cpu.
//
// Two element types (the Elements parameter):
// - F32Elements: a and b are float32, one FMA per (k, vector of 16 columns).
// - Bf16PairElements (builds with AVX512_BF16): each "element" is a pair of bf16 values along the
//   true k (low half k = 2p, high half 2p + 1) packed in a uint32_t, so kdim counts pairs; one
//   vdpbf16ps per (pair, vector) adds both products to the float32 sums (Intel SDM, VDPBF16PS:
//   bf16 inputs, float32 accumulation; denormal inputs and results read as zero). The operands
//   are made by attention_tiles_bf16.h.
//
// Why our own: these products have one short side (36 queries, head_dim 64), where OpenBLAS's
// packing costs a large share, and the OpenBLAS kernels this machine is pinned to use 256-bit
// vectors; this kernel keeps a 6 x 64 block of c in 24 registers over a 128-deep slice of k
// (measured on one thread, 32 x 4096 · 4096 x 64: 195 GFLOP/s vs OpenBLAS's 95; bench/NOTES.md,
// change 14). Summation runs over k in order within each 128-deep slice, slices added in order.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>

namespace difftx::tiles::avx512 {

// The zero-masking forms with a full mask: GCC 12 warns that the plain ones use an uninitialised vector.
inline constexpr __mmask16 kAll = 0xFFFF;

inline constexpr int64_t kProductRows = 6;     // rows of c per register block
inline constexpr int64_t kProductDepth = 128;  // k per pass: 128 rows x 64 floats of b = 32 KiB, in L1
// The first row block of a panel of b whose rows are far apart (transposed keys: one row per
// head-dimension entry, len floats apart) reads each row from L2/L3 while the hardware prefetcher,
// which follows streams within a page, does not see the next row coming; it asks for row k + 8
// itself. The later row blocks find the panel in L1. Prefetches never fault, so reading past b's
// end is harmless. (bench/NOTES.md, change 20.)
inline constexpr int64_t kPrefetchRows = 8;

struct F32Elements {
  using Element = float;
  using Vector = __m512;
  static Vector zero() { return _mm512_setzero_ps(); }
  static Vector load(__mmask16 mask, const float* p) { return _mm512_maskz_loadu_ps(mask, p); }
  static Vector broadcast(float a) { return _mm512_set1_ps(a); }
  static __m512 multiply_add(Vector a, Vector b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
};

#if defined(__AVX512BF16__)
struct Bf16PairElements {
  using Element = uint32_t;  // two bf16 values along k: low half first
  using Vector = __m512i;
  static Vector zero() { return _mm512_setzero_si512(); }
  static Vector load(__mmask16 mask, const uint32_t* p) { return _mm512_maskz_loadu_epi32(mask, p); }
  static Vector broadcast(uint32_t a) { return _mm512_set1_epi32(static_cast<int>(a)); }
  static __m512 multiply_add(Vector a, Vector b, __m512 c) {
    return _mm512_dpbf16_ps(c, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
  }
};
#endif

// One block of R rows x V vectors of 16 columns; the last vector uses `tail` (lanes j < n);
// with Prefetch, b's rows kPrefetchRows ahead are fetched into L1 as it goes.
// Named accumulators, not an array: GCC 12 keeps an array of 24 vectors in memory and stores it
// on every k (measured 70 vs 195 GFLOP/s); rows and vectors beyond R, V are dead code.
template <class E, int R, int V, bool Prefetch = false>
inline void product_block(const typename E::Element* a, int64_t rsa, int64_t csa, const typename E::Element* b,
                          int64_t ldb, int64_t kdim, float* c, int64_t ldc, __mmask16 tail, bool overwrite,
                          float alpha) {
  static_assert(R >= 1 && R <= 6 && V >= 1 && V <= 4);
  using Vec = typename E::Vector;
  const __mmask16 m0 = V == 1 ? tail : kAll, m1 = V == 2 ? tail : kAll, m2 = V == 3 ? tail : kAll, m3 = tail;
  const __m512 zero = _mm512_setzero_ps();
#define DIFFTX_TILE_INIT(r)                                                           \
  __m512 c##r##0 = zero, c##r##1 = zero, c##r##2 = zero, c##r##3 = zero;              \
  if (R > r && !overwrite) {                                                          \
    c##r##0 = _mm512_maskz_loadu_ps(m0, c + r * ldc);                                 \
    if constexpr (V > 1) c##r##1 = _mm512_maskz_loadu_ps(m1, c + r * ldc + 16);       \
    if constexpr (V > 2) c##r##2 = _mm512_maskz_loadu_ps(m2, c + r * ldc + 32);       \
    if constexpr (V > 3) c##r##3 = _mm512_maskz_loadu_ps(m3, c + r * ldc + 48);       \
  }
  DIFFTX_TILE_INIT(0) DIFFTX_TILE_INIT(1) DIFFTX_TILE_INIT(2) DIFFTX_TILE_INIT(3) DIFFTX_TILE_INIT(4)
  DIFFTX_TILE_INIT(5)
#undef DIFFTX_TILE_INIT
  const __m512 scale = _mm512_set1_ps(overwrite ? alpha : 1.0f);
  for (int64_t k = 0; k < kdim; ++k) {
    const typename E::Element* bk = b + k * ldb;
    const typename E::Element* ak = a + k * csa;
    if constexpr (Prefetch) {
      const char* ahead = reinterpret_cast<const char*>(bk + kPrefetchRows * ldb);
      _mm_prefetch(ahead, _MM_HINT_T0);
      if constexpr (V > 1) _mm_prefetch(ahead + 64, _MM_HINT_T0);
      if constexpr (V > 2) _mm_prefetch(ahead + 128, _MM_HINT_T0);
      if constexpr (V > 3) _mm_prefetch(ahead + 192, _MM_HINT_T0);
    }
    const Vec b0 = E::load(m0, bk);
    const Vec b1 = V > 1 ? E::load(m1, bk + 16) : E::zero();
    const Vec b2 = V > 2 ? E::load(m2, bk + 32) : E::zero();
    const Vec b3 = V > 3 ? E::load(m3, bk + 48) : E::zero();
#define DIFFTX_TILE_FMA(r)                                          \
  if constexpr (R > r) {                                            \
    const Vec x = E::broadcast(ak[r * rsa]);                        \
    c##r##0 = E::multiply_add(x, b0, c##r##0);                      \
    if constexpr (V > 1) c##r##1 = E::multiply_add(x, b1, c##r##1); \
    if constexpr (V > 2) c##r##2 = E::multiply_add(x, b2, c##r##2); \
    if constexpr (V > 3) c##r##3 = E::multiply_add(x, b3, c##r##3); \
  }
    DIFFTX_TILE_FMA(0) DIFFTX_TILE_FMA(1) DIFFTX_TILE_FMA(2) DIFFTX_TILE_FMA(3) DIFFTX_TILE_FMA(4) DIFFTX_TILE_FMA(5)
#undef DIFFTX_TILE_FMA
  }
#define DIFFTX_TILE_STORE(r)                                                                    \
  if constexpr (R > r) {                                                                        \
    _mm512_mask_storeu_ps(c + r * ldc, m0, _mm512_mul_ps(scale, c##r##0));                      \
    if constexpr (V > 1) _mm512_mask_storeu_ps(c + r * ldc + 16, m1, _mm512_mul_ps(scale, c##r##1)); \
    if constexpr (V > 2) _mm512_mask_storeu_ps(c + r * ldc + 32, m2, _mm512_mul_ps(scale, c##r##2)); \
    if constexpr (V > 3) _mm512_mask_storeu_ps(c + r * ldc + 48, m3, _mm512_mul_ps(scale, c##r##3)); \
  }
  DIFFTX_TILE_STORE(0) DIFFTX_TILE_STORE(1) DIFFTX_TILE_STORE(2) DIFFTX_TILE_STORE(3) DIFFTX_TILE_STORE(4)
  DIFFTX_TILE_STORE(5)
#undef DIFFTX_TILE_STORE
}

// product_block<E, R, V> for the run-time R (1..6).
template <class E, int V, bool Prefetch = false>
inline void product_rows(int rows, const typename E::Element* a, int64_t rsa, int64_t csa,
                         const typename E::Element* b, int64_t ldb, int64_t kdim, float* c, int64_t ldc,
                         __mmask16 tail, bool overwrite, float alpha) {
  switch (rows) {
    case 6: return product_block<E, 6, V, Prefetch>(a, rsa, csa, b, ldb, kdim, c, ldc, tail, overwrite, alpha);
    case 5: return product_block<E, 5, V, Prefetch>(a, rsa, csa, b, ldb, kdim, c, ldc, tail, overwrite, alpha);
    case 4: return product_block<E, 4, V, Prefetch>(a, rsa, csa, b, ldb, kdim, c, ldc, tail, overwrite, alpha);
    case 3: return product_block<E, 3, V, Prefetch>(a, rsa, csa, b, ldb, kdim, c, ldc, tail, overwrite, alpha);
    case 2: return product_block<E, 2, V, Prefetch>(a, rsa, csa, b, ldb, kdim, c, ldc, tail, overwrite, alpha);
    default: return product_block<E, 1, V, Prefetch>(a, rsa, csa, b, ldb, kdim, c, ldc, tail, overwrite, alpha);
  }
}

// c[m, n] (+)= alpha * A[m, kdim] · b[kdim, n] as described at the top, on elements E; with
// overwrite false, alpha must be 1 (c += A·b). kdim 0 with overwrite sets c to 0.
template <class E>
inline void product_of(const typename E::Element* a, int64_t rsa, int64_t csa, const typename E::Element* b,
                       int64_t ldb, int64_t m, int64_t n, int64_t kdim, float* c, int64_t ldc, bool overwrite = false,
                       float alpha = 1.0f) {
  int64_t k0 = 0;
  do {  // the first pass over k applies `overwrite`; later passes add to c
    const int64_t depth = std::min(kProductDepth, kdim - k0);
    const bool first = k0 == 0;
    const bool last = k0 + depth >= kdim;
    const bool pass_overwrite = first && overwrite;
    // alpha is applied once: to the whole sum when there is one pass, else by a final scaling.
    const float pass_alpha = pass_overwrite && last ? alpha : 1.0f;
    for (int64_t j = 0; j < n; j += 64) {
      const int64_t cols = std::min<int64_t>(64, n - j);
      const int vectors = static_cast<int>((cols + 15) / 16);
      const __mmask16 tail = cols % 16 == 0 ? kAll : static_cast<__mmask16>((1u << (cols % 16)) - 1u);
      for (int64_t i = 0; i < m; i += kProductRows) {
        const int rows = static_cast<int>(std::min(kProductRows, m - i));
        const typename E::Element* ai = a + i * rsa + k0 * csa;
        const typename E::Element* bj = b + k0 * ldb + j;
        float* cij = c + i * ldc + j;
        if (i == 0 && ldb > 64 && vectors == 4) {  // first pass over a full panel of b with rows apart
          product_rows<E, 4, true>(rows, ai, rsa, csa, bj, ldb, depth, cij, ldc, tail, pass_overwrite, pass_alpha);
          continue;
        }
        switch (vectors) {
          case 4: product_rows<E, 4>(rows, ai, rsa, csa, bj, ldb, depth, cij, ldc, tail, pass_overwrite, pass_alpha); break;
          case 3: product_rows<E, 3>(rows, ai, rsa, csa, bj, ldb, depth, cij, ldc, tail, pass_overwrite, pass_alpha); break;
          case 2: product_rows<E, 2>(rows, ai, rsa, csa, bj, ldb, depth, cij, ldc, tail, pass_overwrite, pass_alpha); break;
          default: product_rows<E, 1>(rows, ai, rsa, csa, bj, ldb, depth, cij, ldc, tail, pass_overwrite, pass_alpha); break;
        }
      }
    }
    if (overwrite && alpha != 1.0f && !first && last)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) c[i * ldc + j] *= alpha;
    k0 += depth;
  } while (k0 < kdim);
}

// The float32 product (every caller before bf16 tiles).
inline void product(const float* a, int64_t rsa, int64_t csa, const float* b, int64_t ldb, int64_t m, int64_t n,
                    int64_t kdim, float* c, int64_t ldc, bool overwrite = false, float alpha = 1.0f) {
  product_of<F32Elements>(a, rsa, csa, b, ldb, m, n, kdim, c, ldc, overwrite, alpha);
}

}  // namespace difftx::tiles::avx512

#endif
