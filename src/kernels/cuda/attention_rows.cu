// Standard and differential attention on CUDA cores in float32 (kernels/cuda/kernels.h:
// attention_rows). Decoding, float32 mode, and the head sizes the tensor-core kernel does not take.
//
// A block takes R query rows (R = 1 when T = 1, else 4) of one unit over a range of keys, 128 keys
// at a time (one key per thread for the scores, then one value column per thread for P·V), with
// the online softmax of each (map, row) in shared memory. When the rows alone give fewer blocks
// than twice the multiprocessors, the keys are split among blocks (flash-decoding); the second
// kernel merges the splits exactly (rescaling by their maxima) and writes the output: the map's
// output for standard attention, out_scale * norm(A1 - lambda A2) for differential attention.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/kernels.h"

namespace difftx::cuda {

namespace {

constexpr int kThreads = 128;   // = keys per tile
constexpr int kMaxDim = 256;    // head_dim
constexpr int kMaxCols = 4;     // value columns per thread: width <= 512

__host__ __device__ inline int64_t row_blocks(const AttentionArgs& a, int R) { return (a.T + R - 1) / R; }

struct Split {
  int count = 1;
  int64_t keys = 0;  // per split, a multiple of kThreads
};

Split choose_split(const AttentionArgs& a, int R, int sm_count) {
  const int64_t blocks = a.B * row_blocks(a, R) * a.units;
  const int64_t tiles = std::max<int64_t>(1, (a.S + kThreads - 1) / kThreads);
  Split s;
  if (blocks < 2 * sm_count) s.count = static_cast<int>(std::min<int64_t>(tiles, (2 * sm_count + blocks - 1) / blocks));
  s.keys = (tiles + s.count - 1) / s.count * kThreads;
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

template <int R, int MAPS>
__global__ void __launch_bounds__(kThreads) rows_kernel(const AttentionArgs a, int splits, int64_t keys_per_split,
                                                        float* ws) {
  __shared__ float q_s[MAPS][R][kMaxDim];
  __shared__ float p_s[MAPS * R][kThreads];
  __shared__ float m_s[MAPS * R], l_s[MAPS * R], alpha_s[MAPS * R];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int split = blockIdx.x, unit = blockIdx.y;
  const int64_t nrb = row_blocks(a, R), b = blockIdx.z / nrb, t0 = (blockIdx.z % nrb) * R;
  const int rows = a.T - t0 < R ? static_cast<int>(a.T - t0) : R;
  const int64_t d = a.d, w = a.value_heads * d, off = a.S - a.T;

  int qh[MAPS], kh[MAPS];
#pragma unroll
  for (int m = 0; m < MAPS; ++m) {
    qh[m] = a.heads[m * a.units + unit];
    kh[m] = a.heads[(2 + m) * a.units + unit];
  }
  for (int64_t i = tid; i < MAPS * R * d; i += kThreads) {
    const int m = static_cast<int>(i / (R * d)), r = static_cast<int>(i / d % R);
    const int64_t c = i % d;
    q_s[m][r][c] = r < rows ? a.q[(b * a.T + t0 + r) * a.q_stride + qh[m] * d + c] : 0.0f;
  }
  if (tid < MAPS * R) {
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

  const float* kbase[MAPS];
#pragma unroll
  for (int m = 0; m < MAPS; ++m) kbase[m] = a.k + (b * a.n_k_heads + kh[m]) * a.capacity * d;
  const float* vbase[kMaxCols];
#pragma unroll
  for (int cc = 0; cc < kMaxCols; ++cc) {
    const int64_t c = tid + cc * kThreads;
    vbase[cc] = nullptr;
    if (c < w) {
      const int vh = a.heads[4 * a.units + unit * a.value_heads + static_cast<int>(c / d)];
      vbase[cc] = a.v + (b * a.n_v_heads + vh) * a.capacity * d + c % d;
    }
  }
  float o[MAPS * R][kMaxCols];
#pragma unroll
  for (int p = 0; p < MAPS * R; ++p)
#pragma unroll
    for (int cc = 0; cc < kMaxCols; ++cc) o[p][cc] = 0.0f;
  __syncthreads();

  const bool vec = d % 4 == 0;
  for (int64_t s0 = begin; s0 < end; s0 += kThreads) {
    // Scores: one key per thread, every (map, row).
    const int64_t s = s0 + tid;
#pragma unroll
    for (int m = 0; m < MAPS; ++m) {
      float dot[R];
#pragma unroll
      for (int r = 0; r < R; ++r) dot[r] = 0.0f;
      if (s < end) {
        const float* krow = kbase[m] + s * d;
        if (vec) {
          for (int64_t c = 0; c < d; c += 4) {
            const float4 kv = *reinterpret_cast<const float4*>(krow + c);
#pragma unroll
            for (int r = 0; r < R; ++r)
              dot[r] += q_s[m][r][c] * kv.x + q_s[m][r][c + 1] * kv.y + q_s[m][r][c + 2] * kv.z + q_s[m][r][c + 3] * kv.w;
          }
        } else {
          for (int64_t c = 0; c < d; ++c) {
            const float kv = krow[c];
#pragma unroll
            for (int r = 0; r < R; ++r) dot[r] += q_s[m][r][c] * kv;
          }
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r)
        p_s[m * R + r][tid] = (s < end && r < rows && visible(a, b, off + t0 + r, s, seg_q[r])) ? dot[r] * a.scale
                                                                                                 : -INFINITY;
    }
    __syncthreads();
    // Online softmax of each (map, row): one warp per pair.
    for (int p = warp; p < MAPS * R; p += kThreads / 32) {
      float v[kThreads / 32];
      float mx = -INFINITY;
#pragma unroll
      for (int e = 0; e < kThreads / 32; ++e) {
        v[e] = p_s[p][lane + 32 * e];
        mx = fmaxf(mx, v[e]);
      }
      mx = warp_max(mx);
      const float m_old = m_s[p], m_new = fmaxf(m_old, mx);
      float sum = 0.0f;
#pragma unroll
      for (int e = 0; e < kThreads / 32; ++e) {
        const float pe = m_new == -INFINITY ? 0.0f : expf(v[e] - m_new);
        p_s[p][lane + 32 * e] = pe;
        sum += pe;
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        const float alpha = m_new == -INFINITY ? 1.0f : expf(m_old - m_new);
        alpha_s[p] = alpha;
        l_s[p] = l_s[p] * alpha + sum;
        m_s[p] = m_new;
      }
    }
    __syncthreads();
    // Values: one column per thread (and kThreads apart), every (map, row).
    const int n = end - s0 < kThreads ? static_cast<int>(end - s0) : kThreads;
#pragma unroll
    for (int p = 0; p < MAPS * R; ++p)
#pragma unroll
      for (int cc = 0; cc < kMaxCols; ++cc) o[p][cc] *= alpha_s[p];
#pragma unroll 4
    for (int j = 0; j < n; ++j) {
#pragma unroll
      for (int cc = 0; cc < kMaxCols; ++cc) {
        if (vbase[cc] == nullptr) continue;
        const float vv = vbase[cc][(s0 + j) * d];
#pragma unroll
        for (int p = 0; p < MAPS * R; ++p) o[p][cc] += p_s[p][j] * vv;
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
      for (int cc = 0; cc < kMaxCols; ++cc)
        if (vbase[cc] != nullptr) part.o[slot * w + tid + cc * kThreads] = o[m * R + r][cc];
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
      a.stat_m[m][(b * a.units + unit) * a.T + t] = mx;
      a.stat_l[m][(b * a.units + unit) * a.T + t] = sum;
    }
    if (a.stat_a[m] != nullptr)
#pragma unroll
      for (int cc = 0; cc < kMaxCols; ++cc) {
        const int64_t c = threadIdx.x + cc * kThreads;
        if (c < w) a.stat_a[m][(bt * a.units + unit) * w + c] = out[m][cc];
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
  const Split s = choose_split(a, R, sm_count);
  const dim3 grid(static_cast<unsigned>(s.count), static_cast<unsigned>(a.units),
                  static_cast<unsigned>(a.B * row_blocks(a, R)));
  rows_kernel<R, MAPS><<<grid, kThreads, 0, stream>>>(a, s.count, s.keys, ws);
  DIFFTX_CUDA_CHECK_LAUNCH();
  combine_kernel<MAPS><<<static_cast<unsigned>(a.B * a.T * a.units), kThreads, 0, stream>>>(a, s.count, ws);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

}  // namespace

int64_t attention_rows_workspace(const AttentionArgs& a, int sm_count) {
  const Split s = choose_split(a, a.T == 1 ? 1 : 4, sm_count);
  return s.count * a.B * a.T * a.units * a.maps * (a.value_heads * a.d + 2);
}

void attention_rows(cudaStream_t stream, const AttentionArgs& a, float* ws, int sm_count) {
  if (a.d > kMaxDim || a.value_heads * a.d > kMaxCols * kThreads)
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
