// Small matrix products on attention tiles (at most 36 queries x the keys they see x head width),
// masking and softmax numerators, shared by the attention kernels. Internal to src/kernels/cpu.
//
// On AVX-512 builds the tile products use difftx's register-blocked kernel (tile_product.h),
// and decoding's one-row scores the few-row loops below. Elsewhere full tiles go to OpenBLAS
// (about twice as fast as plain loops, measured T=512, d=64, 2 threads) and tiles of a few rows
// to loops the compiler vectorises (OpenBLAS's per-call cost inside an OpenMP parallel region
// dominates there: 2.5 vs 43 tokens/s decoding SmolLM2-135M).
#pragma once

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>

#include "kernels/cpu/tile_product.h"
#include "kernels/cpu/vec_math.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace difftx::tiles {

inline constexpr int64_t kBlasMinRows = 8;
inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

#if defined(__AVX512F__)
// Few-row scores for decoding (AVX-512, head widths that are multiples of 16). The plain loop
// below compiled to a scalar 16-lane sum per key; this keeps the sums in registers (bench/NOTES.md,
// change 11).
namespace avx512 {

// The four lane sums of a, b, c, e as one [sa, sb, sc, se] vector.
inline __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 e) {
  const __m512 ab = _mm512_add_ps(_mm512_maskz_unpacklo_ps(kAll, a, b), _mm512_maskz_unpackhi_ps(kAll, a, b));
  const __m512 ce = _mm512_add_ps(_mm512_maskz_unpacklo_ps(kAll, c, e), _mm512_maskz_unpackhi_ps(kAll, c, e));
  const __m512 q = _mm512_add_ps(_mm512_shuffle_ps(ab, ce, 0x44), _mm512_shuffle_ps(ab, ce, 0xEE));
  // Each 128-bit lane of q holds partial [sa, sb, sc, se]: add the lanes (swap halves, then pairs).
  const __m512 h = _mm512_add_ps(q, _mm512_maskz_shuffle_f32x4(kAll, q, q, 0x4E));
  return _mm512_maskz_extractf32x4_ps(0xF, _mm512_add_ps(h, _mm512_maskz_shuffle_f32x4(kAll, h, h, 0xB1)), 0);
}

// s[r, j] = scale * a_r · b_j, d a multiple of 16; four keys at a time, each group of four keys
// scored for every row while it is in L1 (decoding scores the query heads of a GQA group together,
// so each key is read from memory once).
inline void scores(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t rows, int64_t n, int64_t d,
                   float scale, float* s) {
  const __m128 vscale = _mm_set1_ps(scale);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* b0 = b + j * ldb;
    for (int64_t r = 0; r < rows; ++r) {
      const float* ar = a + r * lda;
      __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
      for (int64_t x = 0; x < d; x += 16) {
        const __m512 av = _mm512_loadu_ps(ar + x);
        c0 = _mm512_fmadd_ps(av, _mm512_loadu_ps(b0 + x), c0);
        c1 = _mm512_fmadd_ps(av, _mm512_loadu_ps(b0 + ldb + x), c1);
        c2 = _mm512_fmadd_ps(av, _mm512_loadu_ps(b0 + 2 * ldb + x), c2);
        c3 = _mm512_fmadd_ps(av, _mm512_loadu_ps(b0 + 3 * ldb + x), c3);
      }
      _mm_storeu_ps(s + r * n + j, _mm_mul_ps(sum4(c0, c1, c2, c3), vscale));
    }
  }
  for (; j < n; ++j)
    for (int64_t r = 0; r < rows; ++r) {
      const float* ar = a + r * lda;
      __m512 c0 = _mm512_setzero_ps();
      for (int64_t x = 0; x < d; x += 16)
        c0 = _mm512_fmadd_ps(_mm512_loadu_ps(ar + x), _mm512_loadu_ps(b + j * ldb + x), c0);
      const __m512 z = _mm512_setzero_ps();
      s[r * n + j] = _mm_cvtss_f32(sum4(c0, z, z, z)) * scale;
    }
}

}  // namespace avx512
#endif

// s[r, j] = scale * a_r · b_j for rows r < rows (a rows lda apart) and j < n (b rows ldb apart), over d.
inline void scores(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t rows, int64_t n, int64_t d,
                   float scale, float* s) {
  if (rows >= kBlasMinRows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, scale, a, lda, b, ldb, 0.0f, s, n);
    return;
  }
#if defined(__AVX512F__)
  if (d % 16 == 0) {
    avx512::scores(a, lda, b, ldb, rows, n, d, scale, s);
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const float* ar = a + r * lda;
    for (int64_t j = 0; j < n; ++j) {
      const float* bj = b + j * ldb;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t x = 0; x < d; ++x) acc += ar[x] * bj[x];
      s[r * n + j] = acc * scale;
    }
  }
}

// Split-key decoding ("flash-decoding"): with one query per row there are too few (batch, head
// group) work items for the threads (SmolLM2 has 3 key/value heads for 2 threads), so the visible
// keys are cut into chunks; each chunk keeps its row max m_c, sum l_c and unnormalised output
// acc_c, merged exactly by merge_key_chunks.
struct KeyChunks {
  int64_t count = 1;  // chunks per work group
  int64_t size = 0;   // keys per chunk (the last may hold fewer, or none)
};

// Chunks for `visible` keys and `groups` work groups: about two work items per thread, each
// of at least 64 keys.
inline KeyChunks split_keys(int64_t visible, int64_t groups, int64_t threads) {
  constexpr int64_t kMinChunk = 64;
  KeyChunks k;
  k.count = std::clamp<int64_t>((2 * threads + groups - 1) / groups, 1, std::max<int64_t>(1, visible / kMinChunk));
  k.size = (visible + k.count - 1) / k.count;
  return k;
}

// o[0:w] = sum_c e^(m_c - m) acc_c with m = max_c m_c, for chunks c < count whose m, l are
// `stride` floats apart and whose acc rows are acc_stride apart; returns sum_c e^(m_c - m) l_c
// (0 when no chunk saw a key, o then 0), in chunk order.
inline float merge_key_chunks(const float* m, const float* l, int64_t stride, const float* acc, int64_t acc_stride,
                              int64_t count, int64_t w, float* o) {
  float mx = kNegInf;
  for (int64_t c = 0; c < count; ++c) mx = std::max(mx, m[c * stride]);
  std::fill(o, o + w, 0.0f);
  if (mx == kNegInf) return 0.0f;
  float sum = 0.0f;
  for (int64_t c = 0; c < count; ++c) {
    if (m[c * stride] == kNegInf) continue;
    const float scale = std::exp(m[c * stride] - mx);
    sum += scale * l[c * stride];
    const float* a = acc + c * acc_stride;
    for (int64_t x = 0; x < w; ++x) o[x] += scale * a[x];
  }
  return sum;
}

// Keys (or values) of every (batch, head) of a [batch, heads, capacity, d] cache, transposed to
// [batch, heads, d, len], so that the score products can read them as rows of 16 keys
// (avx512::product). Built only where it pays: AVX-512 builds, and calls with at least
// kTransposeMinRows query rows (a decoding step would transpose the whole cache for one query, so
// it keeps the dot-product form). Costs len x d floats per head: transposed once per call, read
// by every query tile and head of its group.
class TransposedKeys {
 public:
  static constexpr int64_t kTransposeMinRows = 16;

  TransposedKeys(const float* k, int64_t batch, int64_t heads, int64_t capacity, int64_t len, int64_t d,
                 int64_t q_rows)
      : heads_(heads), len_(len), d_(d) {
#if defined(__AVX512F__)
    if (q_rows < kTransposeMinRows) return;
    data_.reset(new float[static_cast<size_t>(batch * heads * d * len)]);  // every entry is written below
#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < batch * heads; ++bh) {
      const float* src = k + bh * capacity * d;
      float* dst = data_.get() + bh * d * len;
      for (int64_t s0 = 0; s0 < len; s0 += 64)  // 64 keys at a time: their rows stay in L1
        for (int64_t x = 0; x < d; ++x)
          for (int64_t s = s0; s < std::min(len, s0 + 64); ++s) dst[x * len + s] = src[s * d + x];
    }
#else
    (void)k, (void)batch, (void)capacity, (void)q_rows;
#endif
  }

  // Column `first` of head (b, h): the [d, len] block starting at key `first`; nullptr when not built.
  const float* at(int64_t b, int64_t h, int64_t first) const {
    return data_ ? data_.get() + (b * heads_ + h) * d_ * len_ + first : nullptr;
  }
  int64_t stride() const { return len_; }  // floats between the rows of one head's block

 private:
  std::unique_ptr<float[]> data_;
  int64_t heads_, len_, d_;
};

// scores() with the keys also given transposed (bt: key j in column j, rows ldbt apart; see
// TransposedKeys), used when bt is not null.
inline void scores(const float* a, int64_t lda, const float* b, int64_t ldb, const float* bt, int64_t ldbt,
                   int64_t rows, int64_t n, int64_t d, float scale, float* s) {
#if defined(__AVX512F__)
  if (bt != nullptr) return avx512::product(a, lda, 1, bt, ldbt, rows, n, d, s, n, /*overwrite=*/true, scale);
#endif
  scores(a, lda, b, ldb, rows, n, d, scale, s);
}

// out[r, 0:d] += sum_j p[r, j] * b_j for rows r < rows (out rows ldo apart), j < n (b rows ldb apart).
inline void weighted_rows(const float* p, int64_t rows, int64_t n, const float* b, int64_t ldb, int64_t d, float* out,
                          int64_t ldo) {
#if defined(__AVX512F__)
  avx512::product(p, n, 1, b, ldb, rows, d, n, out, ldo);
#else
  if (rows >= kBlasMinRows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, n, 1.0f, p, n, b, ldb, 1.0f, out, ldo);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * ldo;
    for (int64_t j = 0; j < n; ++j) {
      const float w = p[r * n + j];
      const float* bj = b + j * ldb;
#pragma omp simd
      for (int64_t x = 0; x < d; ++x) o[x] += w * bj[x];
    }
  }
#endif
}

// out[j, 0:d] += sum_r p[r, j] * a_r for j < n (out rows ldo apart), r < rows (a rows lda apart).
inline void weighted_rows_transposed(const float* p, int64_t rows, int64_t n, const float* a, int64_t lda, int64_t d,
                                     float* out, int64_t ldo) {
#if defined(__AVX512F__)
  avx512::product(p, 1, n, a, lda, n, d, rows, out, ldo);
#else
  if (rows >= kBlasMinRows) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, rows, 1.0f, p, n, a, lda, 1.0f, out, ldo);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* ar = a + r * lda;
    for (int64_t j = 0; j < n; ++j) {
      const float w = p[r * n + j];
      float* o = out + j * ldo;
#pragma omp simd
      for (int64_t x = 0; x < d; ++x) o[x] += w * ar[x];
    }
  }
#endif
}

// Sets the scores of keys a row may not see to -inf: row r (cache index first_row + r) sees keys
// lo + j with lo + j <= its index, inside the window, and of its own segment. Only the parts that
// can hold such keys are visited: a tile below the diagonal without window or segments has none.
inline void mask_scores(float* scores, int64_t rows, int64_t n, int64_t lo, int64_t first_row, int64_t window,
                        const int32_t* seg) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = scores + r * n;
    const int64_t i = first_row + r;
    const int64_t first = window > 0 ? std::max<int64_t>(lo, i - window + 1) : lo;
    const int64_t last = std::min(i, lo + n - 1);  // keys after it are in the future
    std::fill(row, row + std::clamp<int64_t>(first - lo, 0, n), kNegInf);
    if (last + 1 - lo < n) std::fill(row + std::max<int64_t>(0, last + 1 - lo), row + n, kNegInf);
    if (seg != nullptr)
      for (int64_t s = first; s <= last; ++s)
        if (seg[s] == 0 || seg[s] != seg[i]) row[s - lo] = kNegInf;
  }
}

// Softmax numerators of one row in place: exp(s - max); returns (max, sum); (-inf, 0) when the
// row sees no key (its numerators are then all 0).
inline std::pair<float, float> softmax_numerators(float* row, int64_t n) {
  const float mx = vec::max_of(row, n);
  if (mx == kNegInf) {
    std::fill(row, row + n, 0.0f);
    return {kNegInf, 0.0f};
  }
  return {mx, vec::exp_shifted_sum(row, n, mx)};
}

}  // namespace difftx::tiles
