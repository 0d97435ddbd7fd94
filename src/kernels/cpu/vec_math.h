// Elementwise exp for the softmax passes, written so that the compiler vectorises the loops that
// call it (std::exp is a library call per element: measured as the largest single cost of the
// attention kernels, see bench/NOTES.md). Internal to src/kernels/cpu.
//
// exp(x) = 2^k * e^r with k = round(x / ln 2) and r = x - k ln 2 in [-ln2/2, ln2/2] (Cody-Waite
// reduction with ln 2 split in two parts), e^r by Cephes' degree-7 minimax polynomial for expf
// (S. Moshier, Cephes Math Library). Relative error below 2^-22 for x in [-87.3, 88.3] (tested
// against std::exp over that range in tests/kernels/vec_math_test.cpp). Inputs below -87.3,
// -inf included, give exactly 0 (the true value is below 2^-126); inputs above 88.3 give
// exp(88.3) (2^127 is the largest power the reduction forms; softmax arguments are <= 0); NaN
// gives NaN. No float-to-int conversion: k comes from the bits of a rounded sum, so no input is
// undefined behaviour.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace difftx::vec {

// The constants of exp_flush and exp16: the argument range, log2(e), ln 2 in two parts, and the
// polynomial's coefficients from the highest power down (e^r = 1 + r + r^2 * poly(r)).
namespace exp_constants {
inline constexpr float kLo = -87.3f, kHi = 88.3f;
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
inline constexpr float kPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                   4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
}  // namespace exp_constants

inline float exp_flush(float x) {
  using namespace exp_constants;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  const float xc = x > kHi ? kHi : (x < kLo ? kLo : x);
  const float t = xc * kLog2e + kRound;
  const float k = t - kRound;
  const int32_t ki = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kRound);
  const float r = (xc - k * kLn2Hi) - k * kLn2Lo;
  float p = kPoly[0];
  for (int i = 1; i < 6; ++i) p = p * r + kPoly[i];
  p = p * r * r + r + 1.0f;
  const float two_k = std::bit_cast<float>(static_cast<int32_t>(static_cast<uint32_t>(ki + 127) << 23));
  const float y = p * two_k;
  return x < kLo ? 0.0f : (x != x ? x : y);
}

#if defined(__AVX512F__)
// exp_flush on 16 lanes: the same reduction and polynomial, with the power of two applied by
// vscalefps and k rounded by vrndscaleps (both round to nearest even, as the scalar form's
// 1.5 * 2^23 addition does). The scalar form compiled under `omp simd` spent its time on the
// blends and masks of its range checks (bench/NOTES.md, change 21).
inline __m512 exp16(__m512 x) {
  using namespace exp_constants;
  // Zero-masking forms with a full mask: GCC 12 warns that the plain ones read an uninitialised vector.
  constexpr __mmask16 kAll = 0xFFFF;
  const __m512 lo = _mm512_set1_ps(kLo), hi = _mm512_set1_ps(kHi);
  // vmaxps / vminps return their second operand when either is NaN: a NaN reaches the result.
  const __m512 xc = _mm512_maskz_min_ps(kAll, hi, _mm512_maskz_max_ps(kAll, lo, x));
  const __m512 k = _mm512_maskz_roundscale_ps(kAll, _mm512_mul_ps(xc, _mm512_set1_ps(kLog2e)),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kLn2Hi), xc);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kPoly[i]));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512 y = _mm512_maskz_scalef_ps(kAll, p, k);
  // Below kLo, -inf included: exactly 0. NaN compares unordered and is kept.
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), y);
}
#endif

// row[j] = exp(row[j] - shift) for j < n (0 where row[j] is -inf); returns the sum of the results.
inline float exp_shifted_sum(float* row, int64_t n, float shift) {
#if defined(__AVX512F__)
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), s));
    _mm512_storeu_ps(row + j, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (j < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - j)) - 1u);
    const __m512 e = _mm512_maskz_mov_ps(tail, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + j), s)));
    _mm512_mask_storeu_ps(row + j, tail, e);
    acc = _mm512_add_ps(acc, e);
  }
  float lanes[16];
  _mm512_storeu_ps(lanes, acc);
  float sum = 0.0f;
  for (float v : lanes) sum += v;
  return sum;
#else
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    const float e = exp_flush(row[j] - shift);
    row[j] = e;
    sum += e;
  }
  return sum;
#endif
}

// The largest of x[0..n) (-inf for n = 0); NaN entries are skipped, as std::max(m, x) skips them.
// GCC 12 leaves the plain loop scalar even under `omp simd reduction(max)` (no -ffinite-math-only):
// measured as 12% of the differential forward at T=4096 (bench/NOTES.md, change 14).
inline float max_of(const float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
#if defined(__AVX512F__)
  // Zero-masking forms with a full mask: GCC 12 warns that the plain ones read an uninitialised vector.
  constexpr __mmask16 kAll = 0xFFFF;
  __m512 m = _mm512_set1_ps(mx);
  for (; j + 16 <= n; j += 16) m = _mm512_maskz_max_ps(kAll, _mm512_loadu_ps(x + j), m);  // (NaN, m) gives m
  if (j < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - j)) - 1u);
    m = _mm512_mask_max_ps(m, tail, _mm512_maskz_loadu_ps(tail, x + j), m);
    j = n;
  }
  float lanes[16];
  _mm512_storeu_ps(lanes, m);
  for (float v : lanes) mx = std::max(mx, v);
#endif
  for (; j < n; ++j) mx = std::max(mx, x[j]);
  return mx;
}

}  // namespace difftx::vec
