#include "kernels/cpu/gemv.h"

#include <algorithm>
#include <bit>

#include "common/parallel.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace difftx {

namespace {

inline float widen(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

inline void store(float* y, int64_t r, float sum, bool accumulate) { y[r] = accumulate ? y[r] + sum : sum; }

// Rows [r0, n) one at a time (the tail below a block of four), for either weight type.
template <typename W, typename Widen>
void rows_one_by_one(const W* w, int64_t r0, int64_t n, int64_t k, const float* x, float* y, bool accumulate,
                     Widen cvt) {
  for (int64_t r = r0; r < n; ++r) {
    const W* wr = w + r * k;
    float a = 0.0f;
#pragma omp simd reduction(+ : a)
    for (int64_t j = 0; j < k; ++j) a += cvt(wr[j]) * x[j];
    store(y, r, a, accumulate);
  }
}

// Four rows from r0 with a plain loop the compiler vectorises.
template <typename W, typename Widen>
void four_rows(const W* w, int64_t r0, int64_t k, const float* x, float* y, bool accumulate, Widen cvt) {
  const W* w0 = w + r0 * k;
  const W *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int64_t j = 0; j < k; ++j) {
    const float xv = x[j];
    a0 += cvt(w0[j]) * xv;
    a1 += cvt(w1[j]) * xv;
    a2 += cvt(w2[j]) * xv;
    a3 += cvt(w3[j]) * xv;
  }
  store(y, r0, a0, accumulate);
  store(y, r0 + 1, a1, accumulate);
  store(y, r0 + 2, a2, accumulate);
  store(y, r0 + 3, a3, accumulate);
}

#if defined(__AVX512F__)
inline __m512 load16(const uint16_t* p) {
  // The zero-masking forms: GCC 12 warns that the plain ones use an uninitialised vector.
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
}

inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }

// The sum of v's 16 lanes: halves, quarters, pairs, then neighbours added in registers (the
// zero-masking shuffles again, where GCC 12's _mm512_reduce_add_ps warns).
inline float lane_sum(__m512 v) {
  constexpr __mmask16 kAll = 0xFFFF;
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(kAll, v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(kAll, v, v, 0xB1));
  v = _mm512_add_ps(v, _mm512_maskz_permute_ps(kAll, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_maskz_permute_ps(kAll, v, 0xB1));
  return _mm512_cvtss_f32(v);
}
inline float scalar(float v) { return v; }
inline float scalar(uint16_t h) { return widen(h); }

// Rows [r0, r1) one after another: each row's dot product with four accumulators over 64 columns
// per step, then the tail of k 16 at a time and scalar. Reading each row to its end before the next
// gives every thread one sequential stream, which the hardware prefetcher follows; the earlier
// kernel read four rows in step (four short streams) and needed software prefetching for bf16
// (bench/NOTES.md, changes 9 and 17).
template <typename W>
void rows_avx512(const W* w, int64_t r0, int64_t r1, int64_t k, const float* x, float* y, bool accumulate) {
  for (int64_t r = r0; r < r1; ++r) {
    const W* wr = w + r * k;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t j = 0;
    for (; j + 64 <= k; j += 64) {
      a0 = _mm512_fmadd_ps(load16(wr + j), _mm512_loadu_ps(x + j), a0);
      a1 = _mm512_fmadd_ps(load16(wr + j + 16), _mm512_loadu_ps(x + j + 16), a1);
      a2 = _mm512_fmadd_ps(load16(wr + j + 32), _mm512_loadu_ps(x + j + 32), a2);
      a3 = _mm512_fmadd_ps(load16(wr + j + 48), _mm512_loadu_ps(x + j + 48), a3);
    }
    for (; j + 16 <= k; j += 16) a0 = _mm512_fmadd_ps(load16(wr + j), _mm512_loadu_ps(x + j), a0);
    float sum = lane_sum(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; j < k; ++j) sum += scalar(wr[j]) * x[j];
    store(y, r, sum, accumulate);
  }
}
#endif

// Block b (rows 4b .. 4b+3, fewer at the end) of one job, with the kernel for the build.
template <bool Portable>
void run_block(const GemvJob& job, int64_t r0) {
  const int64_t n = job.n, k = job.k;
  auto same = [](float v) { return v; };
#if defined(__AVX512F__)
  if constexpr (!Portable) {
    const int64_t r1 = std::min(r0 + 4, n);
    if (job.w_bf16 != nullptr) rows_avx512(job.w_bf16, r0, r1, k, job.x, job.y, job.accumulate);
    else rows_avx512(job.w_f32, r0, r1, k, job.x, job.y, job.accumulate);
    return;
  }
#endif
  if (r0 + 4 > n) {
    if (job.w_bf16 != nullptr) rows_one_by_one(job.w_bf16, r0, n, k, job.x, job.y, job.accumulate, widen);
    else rows_one_by_one(job.w_f32, r0, n, k, job.x, job.y, job.accumulate, same);
    return;
  }
  if (job.w_bf16 != nullptr) four_rows(job.w_bf16, r0, k, job.x, job.y, job.accumulate, widen);
  else four_rows(job.w_f32, r0, k, job.x, job.y, job.accumulate, same);
}

// Every job's blocks of four rows, numbered one after another and shared out over the threads in
// one parallel region (small products stay on the calling thread). Guided: the threads do not
// stream memory equally fast on this machine, and a static split left one waiting (decode
// ~96 -> ~104 tokens/s, bench/NOTES.md change 12). Each row is computed by one thread in a fixed
// order, so results do not depend on the split.
template <bool Portable>
void run_jobs(const GemvJob* jobs, int count) {
  int64_t blocks = 0, work = 0;
  for (int i = 0; i < count; ++i) {
    blocks += (jobs[i].n + 3) / 4;
    work += jobs[i].n * jobs[i].k;
  }
#pragma omp parallel for schedule(guided, 8) if (work >= 65536)
  for (int64_t b = 0; b < blocks; ++b) {
    int i = 0;
    int64_t local = b;
    while (local >= (jobs[i].n + 3) / 4) local -= (jobs[i++].n + 3) / 4;
    run_block<Portable>(jobs[i], local * 4);
  }
}

}  // namespace

void gemv_many(const GemvJob* jobs, int count) { run_jobs<false>(jobs, count); }

void gemv_f32(const float* w, int64_t n, int64_t k, const float* x, float* y, bool accumulate) {
  const GemvJob job{w, nullptr, n, k, x, y, accumulate};
  run_jobs<false>(&job, 1);
}

void gemv_bf16(const uint16_t* w, int64_t n, int64_t k, const float* x, float* y, bool accumulate) {
  const GemvJob job{nullptr, w, n, k, x, y, accumulate};
  run_jobs<false>(&job, 1);
}

void gemv_bf16_portable(const uint16_t* w, int64_t n, int64_t k, const float* x, float* y, bool accumulate) {
  const GemvJob job{nullptr, w, n, k, x, y, accumulate};
  run_jobs<true>(&job, 1);
}

void bf16_rows_to_f32(const uint16_t* src, int64_t rows, int64_t k, float* dst) {
  parallel_ranges(rows, rows * k >= 65536, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const uint16_t* s = src + r * k;
      float* d = dst + r * k;
#pragma omp simd
      for (int64_t j = 0; j < k; ++j) d[j] = widen(s[j]);
    }
  });
}

}  // namespace difftx
