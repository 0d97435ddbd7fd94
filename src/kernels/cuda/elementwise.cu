// Embedding, RMSNorm, RoPE + cache writes, SwiGLU, row gathers, dtype conversions, argmax and
// cross-entropy on CUDA (kernels/cuda/kernels.h). One block per row where rows are reduced.
#include <cuda_bf16.h>

#include <cfloat>
#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/kernels.h"

namespace difftx::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 1048576 ? 1048576 : b));  // grid-stride loops cover the rest
}

__global__ void embedding_kernel(const int32_t* ids, const float* table_f32, const uint16_t* table_bf16, int64_t dim,
                                 float* out) {
  const int64_t i = blockIdx.x;
  const int64_t row = static_cast<int64_t>(ids[i]) * dim;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x)
    out[i * dim + c] = table_bf16 != nullptr ? bf16_to_float(table_bf16[row + c]) : table_f32[row + c];
}

__global__ void rmsnorm_kernel(float* out, const float* x, const float* weight, int64_t dim, float eps, float scale,
                               int64_t stride, int64_t group, uint16_t* out_bf16) {
  const int64_t at = (blockIdx.x / group) * stride + (blockIdx.x % group) * dim;
  const float* xr = x + at;
  float* yr = out + at;
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) ss += xr[c] * xr[c];
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
    const float v = xr[c] * inv;
    const float y = (weight != nullptr ? weight[c] * v : v) * scale;
    yr[c] = y;
    if (out_bf16 != nullptr) out_bf16[blockIdx.x * dim + c] = float_to_bf16(y);
  }
}

// One block per token row: rotates its q heads and k heads, then copies k and v into the caches.
__global__ void rope_cache_kernel(float* q, int64_t q_heads, int64_t q_stride, float* k, int64_t k_heads,
                                  int64_t k_stride, const float* v, int64_t v_heads, int64_t T, int64_t d,
                                  const float* cos, const float* sin, float* k_cache, float* v_cache, int64_t capacity,
                                  int64_t past) {
  const int64_t row = blockIdx.x, b = row / T, t = row % T;
  const int half = static_cast<int>(d / 2);  // 32-bit index arithmetic below: no 64-bit divisions
  const float* c = cos + row * half;
  const float* s = sin + row * half;
  for (int j = threadIdx.x; j < static_cast<int>(q_heads) * half; j += blockDim.x) {
    const int i = j % half;
    float* a = q + row * q_stride + static_cast<int64_t>(j / half) * d + i;
    const float x1 = a[0], x2 = a[half], ci = c[i], si = s[i];
    a[0] = x1 * ci - x2 * si;
    a[half] = x2 * ci + x1 * si;
  }
  for (int j = threadIdx.x; j < static_cast<int>(k_heads) * half; j += blockDim.x) {
    const int64_t h = j / half, i = j % half;
    float* a = k + row * k_stride + h * d + i;
    const float x1 = a[0], x2 = a[half], ci = c[i], si = s[i];
    const float y1 = x1 * ci - x2 * si, y2 = x2 * ci + x1 * si;
    a[0] = y1;
    a[half] = y2;
    float* dst = k_cache + ((b * k_heads + h) * capacity + past + t) * d + i;
    dst[0] = y1;
    dst[half] = y2;
  }
  for (int j = threadIdx.x; j < static_cast<int>(v_heads * d); j += blockDim.x) {
    const int64_t h = j / static_cast<int>(d), i = j % static_cast<int>(d);
    v_cache[((b * v_heads + h) * capacity + past + t) * d + i] = v[row * v_heads * d + j];
  }
}

__global__ void swiglu_kernel(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = silu(gate[i]) * up[i];
}

// Four elements per thread and step (16-byte loads) when n % 4 == 0 and the arrays are aligned.
__global__ void swiglu_bf16_kernel(uint16_t* out, const float* gate, const float* up, int64_t n, bool vec) {
  const int64_t start = blockIdx.x * int64_t{blockDim.x} + threadIdx.x, step = int64_t{gridDim.x} * blockDim.x;
  if (vec) {
    for (int64_t i = start; i < n / 4; i += step) {
      const float4 g = reinterpret_cast<const float4*>(gate)[i], u = reinterpret_cast<const float4*>(up)[i];
      uint2 packed;
      packed.x = pack_bf16x2(silu(g.x) * u.x, silu(g.y) * u.y);
      packed.y = pack_bf16x2(silu(g.z) * u.z, silu(g.w) * u.w);
      reinterpret_cast<uint2*>(out)[i] = packed;
    }
    return;
  }
  for (int64_t i = start; i < n; i += step) out[i] = float_to_bf16(silu(gate[i]) * up[i]);
}

// One block per (token, head) pair row; sigmoid as the CPU's: 1 / (1 + exp(-z)).
__global__ void lambda_combine_kernel(const float* a, const float* z, float mix, int64_t heads, int64_t d, float* out) {
  const int64_t row = blockIdx.x;  // t * heads + i
  const float lambda = mix * (1.0f / (1.0f + expf(-z[row])));
  const int64_t t = row / heads, i = row % heads;
  const float* first = a + (t * 2 * heads + 2 * i) * d;
  for (int64_t x = threadIdx.x; x < d; x += blockDim.x) out[row * d + x] = first[x] - lambda * first[d + x];
}

__global__ void gather_rows_kernel(float* dst, const float* src, int64_t dim, int64_t step, int64_t offset) {
  const int64_t r = blockIdx.x;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) dst[r * dim + c] = src[(r * step + offset) * dim + c];
}

// Rows on grid.y (and beyond, in steps of gridDim.y), columns on grid.x: no index divisions.
__global__ void f32_to_bf16_kernel(uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t src_stride) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < cols; c += int64_t{gridDim.x} * blockDim.x)
      dst[r * cols + c] = float_to_bf16(src[r * src_stride + c]);
}

__global__ void bf16_to_f32_kernel(float* dst, const uint16_t* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = bf16_to_float(src[i]);
}

__global__ void cache_to_bf16_kernel(uint16_t* dst, const float* src, int64_t BH, int64_t S, int64_t capacity,
                                     int64_t d) {
  for (int64_t bh = blockIdx.y; bh < BH; bh += gridDim.y)
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < S * d; i += int64_t{gridDim.x} * blockDim.x)
      dst[bh * S * d + i] = float_to_bf16(src[bh * capacity * d + i]);
}

__global__ void argmax_kernel(const float* logits, int64_t V, int32_t* ids) {
  const float* row = logits + blockIdx.x * V;
  float best = -INFINITY;
  int64_t best_i = V;  // no candidate yet
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x)
    if (best_i == V || row[v] > best) {  // strictly greater: the first (lowest) index wins ties
      best = row[v];
      best_i = v;
    }
  __shared__ float s_val[32];
  __shared__ int64_t s_idx[32];
  // Warp, then block: the larger value, or on equal values the lower index.
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, off);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, best_i, off);
    if (oi != V && (best_i == V || ov > best || (ov == best && oi < best_i))) {
      best = ov;
      best_i = oi;
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    s_val[warp] = best;
    s_idx[warp] = best_i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
      if (s_idx[w] != V && (best_i == V || s_val[w] > best || (s_val[w] == best && s_idx[w] < best_i))) {
        best = s_val[w];
        best_i = s_idx[w];
      }
    ids[blockIdx.x] = static_cast<int32_t>(best_i == V ? 0 : best_i);
  }
}

__global__ void nll_kernel(const float* logits, int64_t V, const int32_t* targets, double* nll) {
  const float* row = logits + blockIdx.x * V;
  const int32_t target = targets[blockIdx.x];
  if (target < 0) {  // an ignored position (the whole block agrees)
    if (threadIdx.x == 0) nll[blockIdx.x] = 0.0;
    return;
  }
  float mx = -INFINITY;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, row[v]);
  mx = block_max(mx);
  double sum = 0.0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) sum += static_cast<double>(expf(row[v] - mx));
  sum = block_sum_double(sum);
  if (threadIdx.x == 0) nll[blockIdx.x] = log(sum) + static_cast<double>(mx) - static_cast<double>(row[target]);
}

}  // namespace

void embedding(cudaStream_t stream, const int32_t* ids, int64_t n, const float* table_f32, const uint16_t* table_bf16,
               int64_t dim, float* out) {
  if (n == 0) return;
  embedding_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(ids, table_f32, table_bf16, dim, out);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void rmsnorm(cudaStream_t stream, float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
             float scale, int64_t row_stride, int64_t group, uint16_t* out_bf16) {
  if (rows == 0) return;
  // About 8 elements per thread: the rows are many and short (2048 of hidden_size in a prefill,
  // one per head for the q/k and differential norms).
  const int threads = dim >= 2048 ? 256 : (dim >= 512 ? 128 : (dim >= 128 ? 64 : 32));
  rmsnorm_kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(out, x, weight, dim, eps, scale,
                                                                      row_stride == 0 ? dim : row_stride, group, out_bf16);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void rope_cache_write(cudaStream_t stream, float* q, int64_t q_heads, int64_t q_stride, float* k, int64_t k_heads,
                      int64_t k_stride, const float* v, int64_t v_heads, int64_t B, int64_t T, int64_t d,
                      const float* cos, const float* sin, float* k_cache, float* v_cache, int64_t capacity,
                      int64_t past) {
  if (B * T == 0) return;
  rope_cache_kernel<<<static_cast<unsigned>(B * T), kThreads, 0, stream>>>(
      q, q_heads, q_stride, k, k_heads, k_stride, v, v_heads, T, d, cos, sin, k_cache, v_cache, capacity, past);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void swiglu(cudaStream_t stream, float* out, const float* gate, const float* up, int64_t n) {
  if (n == 0) return;
  swiglu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, gate, up, n);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void swiglu_to_bf16(cudaStream_t stream, uint16_t* out, const float* gate, const float* up, int64_t n) {
  if (n == 0) return;
  const auto aligned = [](const void* p, uintptr_t to) { return reinterpret_cast<uintptr_t>(p) % to == 0; };
  const bool vec = n % 4 == 0 && aligned(gate, 16) && aligned(up, 16) && aligned(out, 8);
  swiglu_bf16_kernel<<<blocks_for(vec ? n / 4 : n), kThreads, 0, stream>>>(out, gate, up, n, vec);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void lambda_combine(cudaStream_t stream, const float* a, const float* z, float mix, int64_t n, int64_t heads,
                    int64_t d, float* out) {
  if (n * heads == 0) return;
  lambda_combine_kernel<<<static_cast<unsigned>(n * heads), 128, 0, stream>>>(a, z, mix, heads, d, out);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void gather_rows(cudaStream_t stream, float* dst, const float* src, int64_t rows, int64_t dim, int64_t step,
                 int64_t offset) {
  if (rows == 0) return;
  gather_rows_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(dst, src, dim, step, offset);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void f32_to_bf16(cudaStream_t stream, uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t src_stride) {
  if (rows * cols == 0) return;
  const dim3 grid(blocks_for(cols), static_cast<unsigned>(rows < 65535 ? rows : 65535));
  f32_to_bf16_kernel<<<grid, kThreads, 0, stream>>>(dst, src, rows, cols, src_stride);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void bf16_to_f32(cudaStream_t stream, float* dst, const uint16_t* src, int64_t n) {
  if (n == 0) return;
  bf16_to_f32_kernel<<<blocks_for(n), kThreads, 0, stream>>>(dst, src, n);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void cache_to_bf16(cudaStream_t stream, uint16_t* dst, const float* src, int64_t BH, int64_t S, int64_t capacity,
                   int64_t d) {
  if (BH * S * d == 0) return;
  const dim3 grid(blocks_for(S * d), static_cast<unsigned>(BH < 65535 ? BH : 65535));
  cache_to_bf16_kernel<<<grid, kThreads, 0, stream>>>(dst, src, BH, S, capacity, d);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void argmax_rows(cudaStream_t stream, const float* logits, int64_t rows, int64_t V, int32_t* ids) {
  if (rows == 0) return;
  argmax_kernel<<<static_cast<unsigned>(rows), 1024, 0, stream>>>(logits, V, ids);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

void nll_rows(cudaStream_t stream, const float* logits, int64_t rows, int64_t V, const int32_t* targets, double* nll) {
  if (rows == 0) return;
  nll_kernel<<<static_cast<unsigned>(rows), 1024, 0, stream>>>(logits, V, targets, nll);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

}  // namespace difftx::cuda
