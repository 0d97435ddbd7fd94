// bf16 products on attention tiles (the compute mode `--compute-dtype bf16` / `bf16: true`):
// PyTorch autocast runs attention's matmuls (q·k^T, P·v and their gradients) with bf16 inputs and
// float32 accumulation, and the softmax in float32; these helpers do the same on the CPU. Scores,
// softmax statistics, P and every sum stay float32; only the operands of the products are
// rounded to bf16 (round to nearest even, as torch's .to(torch.bfloat16)).
//
// Operands are uint32_t pairs of bf16 along the product's inner dimension (tile_product.h,
// Bf16PairElements): an A operand [m, ceil(k/2)] holds A(i, 2p) in the low half of element (i, p)
// and A(i, 2p + 1) in the high half; a B operand [ceil(k/2), n] holds b(2p, j), b(2p + 1, j) in
// element (p, j). An odd k is padded with a zero half. Built only on AVX512_BF16 builds
// (kAvailable); elsewhere the attention kernels keep their float32 tiles. Internal to src/kernels/cpu.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#include "kernels/cpu/attention_tiles.h"
#include "kernels/cpu/tile_product.h"
#include "kernels/op_types.h"

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace difftx::tiles::bf16 {

#if defined(__AVX512BF16__)
inline constexpr bool kAvailable = true;
#else
inline constexpr bool kAvailable = false;
#endif

class CachePanels;  // AVX512_BF16 builds only (below); others hold null pointers to it

// Whether a call with `rows` query rows uses bf16 tiles: asked for, built with AVX512_BF16, and
// enough rows to pay for packing the cache (as tiles::TransposedKeys; decoding stays float32).
inline bool use_bf16_tiles(TileProducts products, int64_t rows) {
  return kAvailable && products == TileProducts::bf16 && rows >= TransposedKeys::kTransposeMinRows;
}

// bf16 pairs holding k values (the last one padded when k is odd).
inline int64_t pairs(int64_t k) { return (k + 1) / 2; }

// Scratch elements weighted_rows_transposed needs for tiles of up to `rows` x `n`. Outside the
// AVX512_BF16 part: callers size their buffers in code that every build compiles.
inline int64_t transposed_scratch_size(int64_t rows, int64_t n, int64_t d) { return pairs(rows) * (d + n); }

#if defined(__AVX512BF16__)

inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? avx512::kAll : static_cast<__mmask16>((1u << std::max<int64_t>(count, 0)) - 1u);
}

// A operand from row-major float rows: dst[r * ldd + p] = (src[r, 2p], src[r, 2p + 1]) for r < rows,
// p < pairs(k); src rows lds floats apart.
inline void pack_rows(const float* src, int64_t lds, int64_t rows, int64_t k, uint32_t* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * lds;
    uint32_t* o = dst + r * ldd;
    for (int64_t x = 0; x < k; x += 32) {
      const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(k - x), s + x);
      const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(k - x - 16), s + x + 16);
      // cvtne2ps: the second operand's 16 values become the low 16 bf16, i.e. memory order.
      const __m512i packed = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
      _mm512_mask_storeu_epi32(o + x / 2, first_lanes(pairs(k) - x / 2), packed);
    }
  }
}

// B operand from row-major float rows along k: dst[p * ldd + j] = (src[2p, j], src[2p + 1, j]) for
// p < pairs(k), j < n; src rows lds floats apart.
inline void pack_row_pairs(const float* src, int64_t lds, int64_t k, int64_t n, uint32_t* dst, int64_t ldd) {
  for (int64_t p = 0; p < pairs(k); ++p) {
    const float* r0 = src + 2 * p * lds;
    const bool second = 2 * p + 1 < k;
    uint32_t* o = dst + p * ldd;
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = first_lanes(n - j);
      const __m512 x0 = _mm512_maskz_loadu_ps(m, r0 + j);
      const __m512 x1 = second ? _mm512_maskz_loadu_ps(m, r0 + lds + j) : _mm512_setzero_ps();
      const __m512i both = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(x1, x0));  // x0's 16, then x1's 16
      // (zero-masking forms with full masks: GCC 12 warns that the plain ones use uninitialised vectors)
      const __m512i low = _mm512_maskz_cvtepu16_epi32(avx512::kAll, _mm512_maskz_extracti64x4_epi64(0xFF, both, 0));
      const __m512i high = _mm512_maskz_cvtepu16_epi32(avx512::kAll, _mm512_maskz_extracti64x4_epi64(0xFF, both, 1));
      _mm512_mask_storeu_epi32(o + j, m, _mm512_or_si512(low, _mm512_maskz_slli_epi32(avx512::kAll, high, 16)));
    }
  }
}

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols (32-bit elements), in 16 x 16 blocks.
inline void transpose(const uint32_t* src, int64_t lds, int64_t rows, int64_t cols, uint32_t* dst, int64_t ldd) {
  for (int64_t r0 = 0; r0 < rows; r0 += 16)
    for (int64_t c0 = 0; c0 < cols; c0 += 16)
      for (int64_t c = c0; c < std::min(cols, c0 + 16); ++c)
        for (int64_t r = r0; r < std::min(rows, r0 + 16); ++r) dst[c * ldd + r] = src[r * lds + c];
}

// The bf16 panels of a [batch, heads, capacity, d] cache (keys or values) for products whose
// other operand is a tile of queries or of the output gradient. Per (batch, head), over the first
// len positions (padded to an even count with zeros):
// - along d ([pairs(d), len]): B operand of x · cache^T, i.e. scores q·k^T and dP = dA·v^T;
// - along positions ([pairs(len), d]): B operand of P · cache, i.e. P·v and dS·k; a tile's first
//   position must be even there (callers start their key ranges at even positions).
// Each form costs len x d x 2 bytes per head, made once per call by all threads.
class CachePanels {
 public:
  enum Forms { kAlongD = 1, kAlongPositions = 2 };

  CachePanels(const float* x, int64_t batch, int64_t heads, int64_t capacity, int64_t len, int64_t d, int forms)
      : len_(len), d_(d) {
    const int64_t bh_count = batch * heads;
    if (forms & kAlongD) along_d_.reset(new uint32_t[static_cast<size_t>(bh_count * pairs(d) * len)]);
    if (forms & kAlongPositions) along_positions_.reset(new uint32_t[static_cast<size_t>(bh_count * pairs(len) * d)]);
#pragma omp parallel
    {
      std::unique_ptr<uint32_t[]> block(new uint32_t[static_cast<size_t>(64 * pairs(d))]);
#pragma omp for schedule(static)
      for (int64_t bh = 0; bh < bh_count; ++bh) {
        const float* src = x + bh * capacity * d;
        if (along_d_)
          for (int64_t s0 = 0; s0 < len; s0 += 64) {  // 64 positions at a time: their pairs stay in L1
            const int64_t count = std::min<int64_t>(64, len - s0);
            pack_rows(src + s0 * d, d, count, d, block.get(), pairs(d));
            transpose(block.get(), pairs(d), count, pairs(d), along_d_.get() + bh * pairs(d) * len + s0, len);
          }
        if (along_positions_) pack_row_pairs(src, d, len, d, along_positions_.get() + bh * pairs(len) * d, d);
      }
    }
  }

  // Column `first` of head (b, h) along d: rows stride_d() elements apart.
  const uint32_t* along_d(int64_t b, int64_t h, int64_t heads, int64_t first) const {
    return along_d_.get() + (b * heads + h) * pairs(d_) * len_ + first;
  }
  int64_t stride_d() const { return len_; }
  // Row of position `first` (even) of head (b, h) along positions: rows d elements apart.
  const uint32_t* along_positions(int64_t b, int64_t h, int64_t heads, int64_t first) const {
    return along_positions_.get() + (b * heads + h) * pairs(len_) * d_ + first / 2 * d_;
  }

 private:
  std::unique_ptr<uint32_t[]> along_d_, along_positions_;
  int64_t len_, d_;
};

// The panels a forward pass reads: keys along d (scores) and values along positions (P·v); both
// null unless `bf16` (a call that uses bf16 tiles).
struct ForwardPanels {
  std::unique_ptr<CachePanels> keys, values;
  ForwardPanels(bool bf16, const AttentionShape& sh, const float* k, const float* v) {
    if (!bf16) return;
    keys.reset(new CachePanels(k, sh.batch, sh.n_k_heads, sh.kv_capacity, sh.kv_len, sh.head_dim, CachePanels::kAlongD));
    values.reset(new CachePanels(v, sh.batch, sh.n_v_heads, sh.kv_capacity, sh.kv_len, sh.head_dim,
                                 CachePanels::kAlongPositions));
  }
};

// s[r, j] = scale * q_r · panel column j for r < rows, j < n: q_pairs an A operand [rows, pairs(d)]
// (rows ldq apart), the panel along d (rows ldp apart).
inline void scores(const uint32_t* q_pairs, int64_t ldq, const uint32_t* panel, int64_t ldp, int64_t rows, int64_t n,
                   int64_t d, float scale, float* s) {
  avx512::product_of<avx512::Bf16PairElements>(q_pairs, ldq, 1, panel, ldp, rows, n, pairs(d), s, n,
                                               /*overwrite=*/true, scale);
}

// out[r, 0:d] += sum_j p[r, j] * row j of the panel (along positions, rows d apart) for r < rows,
// j < n; p_pairs: the weights as an A operand [rows, pairs(n)] (pack_rows of float32 P).
inline void weighted_rows(const uint32_t* p_pairs, int64_t rows, int64_t n, const uint32_t* panel, int64_t d,
                          float* out, int64_t ldo) {
  avx512::product_of<avx512::Bf16PairElements>(p_pairs, pairs(n), 1, panel, d, rows, d, pairs(n), out, ldo);
}

// out[j, 0:d] += sum_r p[r, j] * a_r for j < n, r < rows: p float32 [rows, n]; a (float32, rows
// lda apart) is a tile of queries or output gradients. Rounds both into B operands in `scratch`
// (pairs(rows) x (d + n) elements); p's pairs, read down their columns, are the A operand p^T.
inline void weighted_rows_transposed(const float* p, int64_t rows, int64_t n, const float* a, int64_t lda, int64_t d,
                                     float* out, int64_t ldo, uint32_t* scratch) {
  uint32_t* a_pairs = scratch;                    // [pairs(rows), d]
  uint32_t* p_pairs = a_pairs + pairs(rows) * d;  // [pairs(rows), n]
  pack_row_pairs(a, lda, rows, d, a_pairs, d);
  pack_row_pairs(p, n, rows, n, p_pairs, n);
  avx512::product_of<avx512::Bf16PairElements>(p_pairs, 1, n, a_pairs, d, n, d, pairs(rows), out, ldo);
}
#endif

}  // namespace difftx::tiles::bf16
