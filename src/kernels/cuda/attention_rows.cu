// Standard and differential attention on CUDA cores in float32 (kernels/cuda/kernels.h:
// attention_rows). Decoding, float32 mode, and the head sizes the tensor-core kernel does not take.
//
// A block takes R query rows (R = 1 when T = 1, else 4) of one unit over a range of keys, in tiles
// of kt keys (64, or fewer for wide heads) that the whole block copies into shared memory with
// coalesced loads: keys (rows padded by one float so that one thread per key reads without bank
// conflicts) and values. Scores: one key per thread; the online softmax of each (map, row): one
// warp per pair; P·V: one value column per thread. When the rows alone give fewer blocks than
// twice the multiprocessors, the keys are split among blocks (flash-decoding); the second kernel
// merges the splits exactly (rescaling by their maxima) and writes the output: the map's output
// for standard attention, out_scale * norm(A1 - lambda A2) for differential attention.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/kernels.h"

namespace difftx::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kMaxDim = 256;    // head_dim
constexpr int kMaxCols = 4;     // value columns per thread: width <= 512
constexpr int kMaxTile = 64;    // keys per tile
constexpr size_t kSmemLimit = 96 * 1024;  // configure_attention_rows()

__host__ __device__ inline int64_t row_blocks(const AttentionArgs& a, int R) { return (a.T + R - 1) / R; }

// Shared memory of a block, in floats: queries [maps][R][d], keys [maps][kt][d + 1], values
// [kt][w], probabilities [maps * R][kt], then m, l, alpha [maps * R].
__host__ __device__ inline int64_t smem_floats(const AttentionArgs& a, int R, int kt) {
  const int64_t pairs = int64_t{a.maps} * R;
  return pairs * a.d + a.maps * kt * (a.d + 1) + int64_t{kt} * a.value_heads * a.d + pairs * kt + 3 * pairs;
}

// The largest key tile (64, 32 or 16) whose shared memory fits.
int key_tile(const AttentionArgs& a, int R) {
  int kt = kMaxTile;
  while (kt > 16 && smem_floats(a, R, kt) * sizeof(float) > kSmemLimit) kt /= 2;
  return kt;
}

struct Split {
  int count = 1;
  int64_t keys = 0;  // per split, a multiple of the key tile
};

Split choose_split(const AttentionArgs& a, int R, int kt, int sm_count) {
  const int64_t blocks = a.B * row_blocks(a, R) * a.units;
  const int64_t tiles = std::max<int64_t>(1, (a.S + kt - 1) / kt);
  Split s;
  if (blocks < 2 * sm_count) s.count = static_cast<int>(std::min<int64_t>(tiles, (2 * sm_count + blocks - 1) / blocks));
  s.keys = (tiles + s.count - 1) / s.count * kt;
  return s;
}

// Whether the query at cache index i sees key s (kernels/cpu/attention.h).
__device__ __forceinline__ bool visible(const AttentionArgs& a, int64_t b, int64_t i, int64_t s, int32_t seg_q) {
  if (s > i || s >= a.S) return false;
  if (a.window > 0 && i - s >= a.window) return false;
  if (a.segments != nullptr) {
    const int32_t seg = a.segments[b * a.capacity + s];
    if (seg_q == 0 || seg != seg_q) return false;
  }
  return true;
}

// Workspace layout: partial outputs [splits, rows, maps, w], then maxima and sums [splits, rows, maps].
struct Partials {
  float *o, *m, *l;
};
__host__ __device__ inline Partials partials(float* ws, const AttentionArgs& a, int splits) {
  const int64_t n = splits * a.B * a.T * a.units * a.maps;
  return {ws, ws + n * a.value_heads * a.d, ws + n * a.value_heads * a.d + n};
}

// The tile copy of rows_kernel with AttentionArgs::batched_loads: each thread loads kCopyBatch
// floats (kThreads apart: coalesced) into registers before it stores any, so a thread waits for one
// memory round trip per kCopyBatch * kThreads floats instead of one per kThreads. The keys of a
// tile are n * d consecutive floats of their head's cache; the values of value head j fill the
// columns [j d, (j + 1) d) of v_s.
constexpr int kCopyBatch = 8;

// count consecutive floats of src into dst[place(i)], kCopyBatch loads per thread in flight.
template <class Place>
__device__ __forceinline__ void copy_batched(const float* src, int count, float* dst, Place place) {
  float r[kCopyBatch];
  for (int i0 = threadIdx.x; i0 < count; i0 += kThreads * kCopyBatch) {
#pragma unroll
    for (int j = 0; j < kCopyBatch; ++j) {
      const int i = i0 + j * kThreads;
      r[j] = i < count ? __ldg(src + i) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kCopyBatch; ++j) {
      const int i = i0 + j * kThreads;
      if (i < count) dst[place(i)] = r[j];
    }
  }
}

template <int MAPS>
__device__ __forceinline__ void copy_tile_batched(const AttentionArgs& a, const float* const (&kbase)[MAPS], int64_t b,
                                                  int unit, int64_t s0, int n, int kt, float* k_s, float* v_s) {
  const int d = static_cast<int>(a.d), w = a.value_heads * d, count = n * d;
  // Keys: map m's tile is kbase[m][s0 * d, (s0 + n) * d), stored as rows of d + 1 floats.
#pragma unroll
  for (int m = 0; m < MAPS; ++m)
    copy_batched(kbase[m] + s0 * a.d, count, k_s + m * kt * (d + 1), [d](int i) { return (i / d) * (d + 1) + i % d; });
  // Values: value head j's tile is d-float rows of its cache, into v_s[key][j d + c].
  for (int j = 0; j < a.value_heads; ++j) {
    const int vh = a.heads[4 * a.units + unit * a.value_heads + j];
    copy_batched(a.v + ((b * a.n_v_heads + vh) * a.capacity + s0) * a.d, count, v_s + j * d,
                 [d, w](int i) { return (i / d) * w + i % d; });
  }
}

template <int R, int MAPS>
__global__ void __launch_bounds__(kThreads) rows_kernel(const AttentionArgs a, int splits, int64_t keys_per_split,
                                                        int kt, float* ws) {
  extern __shared__ float smem[];
  constexpr int P = MAPS * R;  // (map, row) pairs
  const int d = static_cast<int>(a.d), w = a.value_heads * d;
  float* q_s = smem;                      // [P][d], pair p = m * R + r
  float* k_s = q_s + P * d;               // [MAPS][kt][d + 1]
  float* v_s = k_s + MAPS * kt * (d + 1);  // [kt][w]
  float* p_s = v_s + kt * w;              // [P][kt]
  float* m_s = p_s + P * kt;              // [P]
  float* l_s = m_s + P;
  float* alpha_s = l_s + P;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int split = blockIdx.x, unit = blockIdx.y;
  const int64_t nrb = row_blocks(a, R), b = blockIdx.z / nrb, t0 = (blockIdx.z % nrb) * R;
  const int rows = a.T - t0 < R ? static_cast<int>(a.T - t0) : R;
  const int64_t off = a.S - a.T;

  int qh[MAPS];
  const float* kbase[MAPS];
#pragma unroll
  for (int m = 0; m < MAPS; ++m) {
    qh[m] = a.heads[m * a.units + unit];
    kbase[m] = a.k + (b * a.n_k_heads + a.heads[(2 + m) * a.units + unit]) * a.capacity * a.d;
  }
  for (int i = tid; i < P * d; i += kThreads) {
    const int p = i / d, c = i % d, m = p / R, r = p % R;
    q_s[i] = r < rows ? a.q[(b * a.T + t0 + r) * a.q_stride + qh[m] * a.d + c] : 0.0f;
  }
  if (tid < P) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.0f;
  }
  int32_t seg_q[R];
#pragma unroll
  for (int r = 0; r < R; ++r) seg_q[r] = (a.segments != nullptr && r < rows) ? a.segments[b * a.capacity + off + t0 + r] : 1;

  // Keys any of the rows may see, and this split's share of them.
  const int64_t hi = off + t0 + rows - 1;
  const int64_t lo = a.window > 0 && off + t0 - a.window + 1 > 0 ? off + t0 - a.window + 1 : 0;
  const int64_t begin = lo + split * keys_per_split;
  const int64_t end = hi + 1 < begin + keys_per_split ? hi + 1 : begin + keys_per_split;

  float o[P][kMaxCols];
#pragma unroll
  for (int p = 0; p < P; ++p)
#pragma unroll
    for (int cc = 0; cc < kMaxCols; ++cc) o[p][cc] = 0.0f;
  __syncthreads();

  for (int64_t s0 = begin; s0 < end; s0 += kt) {
    const int n = end - s0 < kt ? static_cast<int>(end - s0) : kt;  // keys in this tile
    // Copy the tile: keys of every map, then the values (coalesced: consecutive threads read
    // consecutive floats of a row).
    if (a.batched_loads) {
      copy_tile_batched<MAPS>(a, kbase, b, unit, s0, n, kt, k_s, v_s);
    } else {
#pragma unroll
      for (int m = 0; m < MAPS; ++m)
        for (int i = tid; i < n * d; i += kThreads) {
          const int key = i / d, c = i % d;
          k_s[(m * kt + key) * (d + 1) + c] = kbase[m][(s0 + key) * a.d + c];
        }
      for (int i = tid; i < n * w; i += kThreads) {
        const int key = i / w, c = i % w;
        const int vh = a.heads[4 * a.units + unit * a.value_heads + c / d];
        v_s[key * w + c] = a.v[((b * a.n_v_heads + vh) * a.capacity + s0 + key) * a.d + c % d];
      }
    }
    __syncthreads();
    // Scores: thread -> (key j, pairs p = g, g + kThreads / kt, ...).
    for (int i = tid; i < P * kt; i += kThreads) {
      const int j = i % kt, p = i / kt, m = p / R, r = p % R;
      float v = -INFINITY;
      if (j < n && r < rows && visible(a, b, off + t0 + r, s0 + j, seg_q[r])) {
        const float* kr = k_s + (m * kt + j) * (d + 1);
        const float* qr = q_s + p * d;
        float dot = 0.0f;
        for (int c = 0; c < d; ++c) dot += qr[c] * kr[c];
        v = dot * a.scale;
      }
      p_s[p * kt + j] = v;
    }
    __syncthreads();
    // Online softmax of each pair: one warp per pair.
    for (int p = warp; p < P; p += kThreads / 32) {
      const float v0 = lane < kt ? p_s[p * kt + lane] : -INFINITY;
      const float v1 = lane + 32 < kt ? p_s[p * kt + lane + 32] : -INFINITY;
      const float mx = warp_max(fmaxf(v0, v1));
      const float m_old = m_s[p], m_new = fmaxf(m_old, mx);
      const float e0 = m_new == -INFINITY ? 0.0f : expf(v0 - m_new);
      const float e1 = m_new == -INFINITY ? 0.0f : expf(v1 - m_new);
      if (lane < kt) p_s[p * kt + lane] = e0;
      if (lane + 32 < kt) p_s[p * kt + lane + 32] = e1;
      const float sum = warp_sum(e0 + e1);
      if (lane == 0) {
        const float alpha = m_new == -INFINITY ? 1.0f : expf(m_old - m_new);
        alpha_s[p] = alpha;
        l_s[p] = l_s[p] * alpha + sum;
        m_s[p] = m_new;
      }
    }
    __syncthreads();
    // Values: one column per thread (and kThreads apart), every pair.
#pragma unroll
    for (int cc = 0; cc < kMaxCols; ++cc) {
      const int c = tid + cc * kThreads;
      if (c >= w) break;
#pragma unroll
      for (int p = 0; p < P; ++p) o[p][cc] *= alpha_s[p];
      for (int j = 0; j < n; ++j) {
        const float vv = v_s[j * w + c];
#pragma unroll
        for (int p = 0; p < P; ++p) o[p][cc] += p_s[p * kt + j] * vv;
      }
    }
    __syncthreads();
  }

  const Partials part = partials(ws, a, splits);
  const int64_t total = a.B * a.T * a.units;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (r >= rows) break;
    const int64_t row = (b * a.T + t0 + r) * a.units + unit;
#pragma unroll
    for (int m = 0; m < MAPS; ++m) {
      const int64_t slot = (split * total + row) * MAPS + m;
      if (tid == 0) {
        part.m[slot] = m_s[m * R + r];
        part.l[slot] = l_s[m * R + r];
      }
#pragma unroll
      for (int cc = 0; cc < kMaxCols; ++cc) {
        const int c = tid + cc * kThreads;
        if (c < w) part.o[slot * w + c] = o[m * R + r][cc];
      }
    }
  }
}

// One block per (row, unit): merges the splits of each map and writes the output and statistics.
template <int MAPS>
__global__ void __launch_bounds__(kThreads) combine_kernel(const AttentionArgs a, int splits, float* ws) {
  const int64_t row = blockIdx.x, unit = row % a.units, bt = row / a.units, b = bt / a.T, t = bt % a.T;
  const int64_t w = a.value_heads * a.d, total = a.B * a.T * a.units;
  const Partials part = partials(ws, a, splits);
  float out[MAPS][kMaxCols];
#pragma unroll
  for (int m = 0; m < MAPS; ++m) {
    float mx = -INFINITY;
    for (int s = 0; s < splits; ++s) mx = fmaxf(mx, part.m[(s * total + row) * MAPS + m]);
    float sum = 0.0f;
    float acc[kMaxCols] = {};
    for (int s = 0; s < splits; ++s) {
      const int64_t slot = (s * total + row) * MAPS + m;
      const float ms = part.m[slot];
      if (ms == -INFINITY) continue;  // this split saw no key
      const float f = expf(ms - mx);
      sum += part.l[slot] * f;
#pragma unroll
      for (int cc = 0; cc < kMaxCols; ++cc) {
        const int64_t c = threadIdx.x + cc * kThreads;
        if (c < w) acc[cc] += part.o[slot * w + c] * f;
      }
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
    for (int cc = 0; cc < kMaxCols; ++cc) out[m][cc] = acc[cc] * inv;
    if (a.stat_m[m] != nullptr && threadIdx.x == 0) {
      a.stat_m[m][(b * a.stat_units + unit) * a.T + t] = mx;
      a.stat_l[m][(b * a.stat_units + unit) * a.T + t] = sum;
    }
    if (a.stat_a[m] != nullptr)
#pragma unroll
      for (int cc = 0; cc < kMaxCols; ++cc) {
        const int64_t c = threadIdx.x + cc * kThreads;
        if (c < w) a.stat_a[m][(bt * a.stat_units + unit) * w + c] = out[m][cc];
      }
  }
  float* dst = a.out + bt * a.out_stride + unit * w;
  if constexpr (MAPS == 1) {
#pragma unroll
    for (int cc = 0; cc < kMaxCols; ++cc) {
      const int64_t c = threadIdx.x + cc * kThreads;
      if (c < w) dst[c] = out[0][cc];
    }
  } else {
    float z[kMaxCols], ss = 0.0f;
#pragma unroll
    for (int cc = 0; cc < kMaxCols; ++cc) {
      const int64_t c = threadIdx.x + cc * kThreads;
      z[cc] = c < w ? out[0][cc] - a.lambda * out[1][cc] : 0.0f;
      ss += z[cc] * z[cc];
    }
    float scale = a.out_scale;
    if (a.norm) scale *= 1.0f / sqrtf(block_sum(ss) / static_cast<float>(w) + a.norm_eps);
#pragma unroll
    for (int cc = 0; cc < kMaxCols; ++cc) {
      const int64_t c = threadIdx.x + cc * kThreads;
      if (c < w) dst[c] = z[cc] * scale * (a.norm_weight != nullptr ? a.norm_weight[c] : 1.0f);
    }
  }
}

template <int R, int MAPS>
void launch(cudaStream_t stream, const AttentionArgs& a, float* ws, int sm_count) {
  const int kt = key_tile(a, R);
  const Split s = choose_split(a, R, kt, sm_count);
  const dim3 grid(static_cast<unsigned>(s.count), static_cast<unsigned>(a.units),
                  static_cast<unsigned>(a.B * row_blocks(a, R)));
  const size_t smem = static_cast<size_t>(smem_floats(a, R, kt)) * sizeof(float);
  rows_kernel<R, MAPS><<<grid, kThreads, smem, stream>>>(a, s.count, s.keys, kt, ws);
  DIFFTX_CUDA_CHECK_LAUNCH();
  combine_kernel<MAPS><<<static_cast<unsigned>(a.B * a.T * a.units), kThreads, 0, stream>>>(a, s.count, ws);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

}  // namespace

void configure_attention_rows() {
  const int bytes = static_cast<int>(kSmemLimit);
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(rows_kernel<1, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(rows_kernel<1, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(rows_kernel<4, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(rows_kernel<4, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

int64_t attention_rows_workspace(const AttentionArgs& a, int sm_count) {
  const int R = a.T == 1 ? 1 : 4;
  const Split s = choose_split(a, R, key_tile(a, R), sm_count);
  return s.count * a.B * a.T * a.units * a.maps * (a.value_heads * a.d + 2);
}

void attention_rows(cudaStream_t stream, const AttentionArgs& a, float* ws, int sm_count) {
  if (a.d > kMaxDim || a.value_heads * a.d > kMaxCols * kThreads ||
      smem_floats(a, a.T == 1 ? 1 : 4, 16) * sizeof(float) > kSmemLimit)
    fail<DeviceError>("CUDA attention: head_dim {} with {} value heads is more than this kernel takes (head_dim <= {}, "
                      "width <= {})", a.d, a.value_heads, kMaxDim, kMaxCols * kThreads);
  if (a.B * a.T * a.units == 0) return;
  if (a.T == 1) {
    if (a.maps == 1) launch<1, 1>(stream, a, ws, sm_count);
    else launch<1, 2>(stream, a, ws, sm_count);
  } else {
    if (a.maps == 1) launch<4, 1>(stream, a, ws, sm_count);
    else launch<4, 2>(stream, a, ws, sm_count);
  }
}

}  // namespace difftx::cuda
