#include "kernels/cpu/gemv.h"

#include <algorithm>
#include <atomic>
#include <bit>

#include <omp.h>

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

// S rows read in step, each to its end, two accumulators per row over 32 columns, then the
// tail of k 16 at a time and scalar.
template <int S, typename W>
void rows_in_step(const W* const* wr, int64_t k, const float* x, float* sums) {
  __m512 a[S][2];
  for (int s = 0; s < S; ++s) a[s][0] = a[s][1] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= k; j += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + j), x1 = _mm512_loadu_ps(x + j + 16);
    for (int s = 0; s < S; ++s) {
      a[s][0] = _mm512_fmadd_ps(load16(wr[s] + j), x0, a[s][0]);
      a[s][1] = _mm512_fmadd_ps(load16(wr[s] + j + 16), x1, a[s][1]);
    }
  }
  if (j + 16 <= k) {
    const __m512 x0 = _mm512_loadu_ps(x + j);
    for (int s = 0; s < S; ++s) a[s][0] = _mm512_fmadd_ps(load16(wr[s] + j), x0, a[s][0]);
    j += 16;
  }
  for (int s = 0; s < S; ++s) {
    float sum = lane_sum(_mm512_add_ps(a[s][0], a[s][1]));
    for (int64_t t = j; t < k; ++t) sum += scalar(wr[s][t]) * x[t];
    sums[s] = sum;
  }
}

// Rows [r0, r1) as kStreams contiguous runs read in step: row i of every run, then row i + 1.
// Each run is a sequential stream of whole rows (32 rows of 576 floats: 72 KB), and the thread
// keeps kStreams of them in flight: one stream per thread left the memory system idle between
// the hardware prefetcher's requests (read-only streaming here: ~10% more bytes per second with
// four streams; bench/NOTES.md change 25). Four rows in step *within* a block of four (change 9)
// were four short streams that the prefetcher followed badly; these runs are long.
constexpr int kStreams = 4;

template <typename W>
void rows_avx512(const W* w, int64_t r0, int64_t r1, int64_t k, const float* x, float* y, bool accumulate) {
  const int64_t per = (r1 - r0) / kStreams;
  for (int64_t i = 0; i < per; ++i) {
    const W* rows[kStreams];
    float sums[kStreams];
    for (int s = 0; s < kStreams; ++s) rows[s] = w + (r0 + s * per + i) * k;
    rows_in_step<kStreams>(rows, k, x, sums);
    for (int s = 0; s < kStreams; ++s) store(y, r0 + s * per + i, sums[s], accumulate);
  }
  for (int64_t r = r0 + per * kStreams; r < r1; ++r) {
    const W* row = w + r * k;
    float sum;
    rows_in_step<1>(&row, k, x, &sum);
    store(y, r, sum, accumulate);
  }
}
#endif

// Rows per block that one thread takes at a time, at most: 128 for the AVX-512 kernel (four runs
// of 32), 4 for the portable loop.
template <bool Portable>
constexpr int64_t max_block_rows() {
#if defined(__AVX512F__)
  if constexpr (!Portable) return 128;
#endif
  return 4;
}

// Rows of the AVX-512 kernel's smallest block (the end of a region).
constexpr int64_t kMinBlockRows = 8;

// Rows [r0, r1) of one job, with the kernel for the build.
template <bool Portable>
void run_block(const GemvJob& job, int64_t r0, int64_t r1) {
  const int64_t k = job.k;
  auto same = [](float v) { return v; };
#if defined(__AVX512F__)
  if constexpr (!Portable) {
    if (job.w_bf16 != nullptr) rows_avx512(job.w_bf16, r0, r1, k, job.x, job.y, job.accumulate);
    else rows_avx512(job.w_f32, r0, r1, k, job.x, job.y, job.accumulate);
    return;
  }
#endif
  if (r0 + 4 > r1) {
    if (job.w_bf16 != nullptr) rows_one_by_one(job.w_bf16, r0, r1, k, job.x, job.y, job.accumulate, widen);
    else rows_one_by_one(job.w_f32, r0, r1, k, job.x, job.y, job.accumulate, same);
    return;
  }
  if (job.w_bf16 != nullptr) four_rows(job.w_bf16, r0, k, job.x, job.y, job.accumulate, widen);
  else four_rows(job.w_f32, r0, k, job.x, job.y, job.accumulate, same);
}

// Jobs per parallel region (gemv_many runs more as several regions).
constexpr int kMaxJobs = 8;

// The rows of a region's jobs numbered one after another ([first[i], first[i + 1]) is job i), and
// the block that starts at row `pos` for `threads` threads: the work left (rows times columns,
// to the end of the last job) shared out over the threads, in a multiple of 4 rows from
// kMinBlockRows to 128, cut at the job's end. Blocks shrink towards the end of the region, so
// the threads finish within a few rows of each other: blocks of one size left one thread waiting
// for the other's last block at the end of every region, ~half a block (7-20 us here) about five
// times per layer (bench/NOTES.md, change 29). The block sequence depends only on the jobs and
// the thread count, never on which thread claims which block.
struct RegionRows {
  const GemvJob* jobs;
  int count;
  int64_t first[kMaxJobs + 1];

  RegionRows(const GemvJob* j, int c) : jobs(j), count(c) {
    first[0] = 0;
    for (int i = 0; i < c; ++i) first[i + 1] = first[i] + j[i].n;
  }
  int64_t rows() const { return first[count]; }
  int job_of(int64_t pos) const {
    int i = 0;
    while (pos >= first[i + 1]) ++i;
    return i;
  }
  int64_t block_at(int64_t pos, int i, int threads) const {
    int64_t left = (first[i + 1] - pos) * jobs[i].k;
    for (int j = i + 1; j < count; ++j) left += jobs[j].n * jobs[j].k;
    const int64_t share = left / threads / std::max<int64_t>(1, jobs[i].k);
    const int64_t rows = std::clamp<int64_t>((share + 3) / 4 * 4, kMinBlockRows, max_block_rows<false>());
    return std::min(rows, first[i + 1] - pos);
  }
};

// Every job's rows in one parallel region (small products stay on the calling thread). Not a
// static split: the threads do not stream memory equally fast on this machine, and a static split
// left one waiting (decode ~96 -> ~104 tokens/s, bench/NOTES.md change 12). The AVX-512 kernel's
// threads claim the blocks of RegionRows in turn from a shared position; the portable loop takes
// blocks of 4 rows, guided. Each row is computed by one thread in a fixed order, so results do not
// depend on the split or the thread count.
template <bool Portable>
void run_jobs(const GemvJob* jobs, int count) {
  int64_t work = 0;
  for (int i = 0; i < count; ++i) work += jobs[i].n * jobs[i].k;
  const bool parallel = work >= 65536;
  if constexpr (max_block_rows<Portable>() == 4) {
    int64_t first[kMaxJobs + 1];  // each job's first block of 4 rows
    first[0] = 0;
    for (int i = 0; i < count; ++i) first[i + 1] = first[i] + (jobs[i].n + 3) / 4;
#pragma omp parallel for schedule(guided, 8) if (parallel)
    for (int64_t b = 0; b < first[count]; ++b) {
      int i = 0;
      while (b >= first[i + 1]) ++i;
      const int64_t r0 = (b - first[i]) * 4;
      run_block<Portable>(jobs[i], r0, std::min(r0 + 4, jobs[i].n));
    }
  } else {
    const RegionRows region(jobs, count);
    std::atomic<int64_t> next{0};
    auto claim_and_run = [&](int threads) {
      for (;;) {
        int64_t pos = next.load(std::memory_order_relaxed), rows = 0;
        int i = 0;
        do {
          if (pos >= region.rows()) return;
          i = region.job_of(pos);
          rows = region.block_at(pos, i, threads);
        } while (!next.compare_exchange_weak(pos, pos + rows, std::memory_order_relaxed));
        const int64_t r0 = pos - region.first[i];
        run_block<Portable>(jobs[i], r0, r0 + rows);
      }
    };
    if (!parallel || omp_in_parallel() || omp_get_max_threads() == 1) {
      claim_and_run(1);
      return;
    }
#pragma omp parallel
    claim_and_run(omp_get_num_threads());
  }
}

}  // namespace

void gemv_many(const GemvJob* jobs, int count) {
  for (int i = 0; i < count; i += kMaxJobs) run_jobs<false>(jobs + i, std::min(kMaxJobs, count - i));
}

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
