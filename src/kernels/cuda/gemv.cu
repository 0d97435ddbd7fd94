// Products with few activation rows (decoding): y[m, n] = input[m, k] · w[n, k]^T, m <= 8.
// Memory-bound: the weights are read once, each row by one warp in 16-byte loads (8 bfloat16 or
// 4 float32 per lane), unrolled so that several loads are in flight. The input rows are staged in
// shared memory when they fit (m * k floats <= 48 KiB), transformed on the way in (rmsnorm with
// the layer's norm weight, or silu(gate) * up), so norm and activation cost no launch of their own.
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/kernels.h"

namespace difftx::cuda {

namespace {

constexpr int kWarps = 8;                   // output rows per block
constexpr int kThreads = kWarps * 32;
constexpr int64_t kStageBytes = 64 * 1024;  // shared memory for staged input rows (configure_gemv)

// 8 consecutive weights of a row as loaded: one 16-byte load of bfloat16, two of float32.
template <bool BF16>
struct Load8;
template <>
struct Load8<true> {
  uint4 raw;
};
template <>
struct Load8<false> {
  float4 a, b;
};

template <bool BF16>
__device__ __forceinline__ void issue8(const GemvOutput& o, int64_t offset, Load8<BF16>& l) {
  if constexpr (BF16) {
    l.raw = __ldg(reinterpret_cast<const uint4*>(o.w_bf16 + offset));
  } else {
    l.a = __ldg(reinterpret_cast<const float4*>(o.w_f32 + offset));
    l.b = __ldg(reinterpret_cast<const float4*>(o.w_f32 + offset + 4));
  }
}

template <bool BF16>
__device__ __forceinline__ void unpack8(const Load8<BF16>& l, float (&w)[8]) {
  if constexpr (BF16) {
    const uint32_t parts[4] = {l.raw.x, l.raw.y, l.raw.z, l.raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[2 * i] = __uint_as_float(parts[i] << 16);
      w[2 * i + 1] = __uint_as_float(parts[i] & 0xffff0000u);
    }
  } else {
    w[0] = l.a.x; w[1] = l.a.y; w[2] = l.a.z; w[3] = l.a.w;
    w[4] = l.b.x; w[5] = l.b.y; w[6] = l.b.z; w[7] = l.b.w;
  }
}

// Loads 8 consecutive weights of a row as float32.
template <bool BF16>
__device__ __forceinline__ void load8(const GemvOutput& o, int64_t offset, float (&w)[8]) {
  Load8<BF16> l;
  issue8<BF16>(o, offset, l);
  unpack8<BF16>(l, w);
}

template <bool BF16>
__device__ __forceinline__ float load1(const GemvOutput& o, int64_t offset) {
  if constexpr (BF16) return bf16_to_float(o.w_bf16[offset]);
  else return o.w_f32[offset];
}

// Input element (r, c) when it is read straight from global memory (plain input only).
__device__ __forceinline__ const float* input_row(const GemvArgs& a, int r) {
  return a.x + r * (a.x_stride == 0 ? a.k : a.x_stride);
}

// The output that global row `row` belongs to (outputs' rows are numbered one after another), with
// `row` made relative to it; false past the last. Constant indices keep the arguments in the
// kernel's parameter space.
__device__ __forceinline__ bool select_output(const GemvArgs& a, int64_t& row, GemvOutput& o) {
#pragma unroll
  for (int j = 0; j < 3; ++j) {
    if (j >= a.n_out) return false;
    if (row < a.out[j].n) {
      o = a.out[j];
      return true;
    }
    row -= a.out[j].n;
  }
  return false;
}

// Stages the (transformed) input rows in shared memory: xs[r * k + c].
__device__ __forceinline__ void stage_input(const GemvArgs& a, float* xs) {
  const int64_t k = a.k, stride = a.x_stride == 0 ? k : a.x_stride;
  for (int r = 0; r < a.m; ++r) {
    const float* x = a.x + r * stride;
    if (a.input == GemvInput::rmsnorm) {
      float ss = 0.0f;
      for (int64_t c = threadIdx.x; c < k; c += blockDim.x) ss += x[c] * x[c];
      ss = block_sum(ss);
      const float inv = 1.0f / sqrtf(ss / static_cast<float>(k) + a.eps);
      for (int64_t c = threadIdx.x; c < k; c += blockDim.x) {
        const float v = a.norm_weight[c] * (x[c] * inv);
        xs[r * k + c] = v;
        if (blockIdx.x == 0) a.xn[r * k + c] = v;
      }
    } else if (a.input == GemvInput::swiglu) {
      const float* up = a.up + r * stride;
      for (int64_t c = threadIdx.x; c < k; c += blockDim.x) xs[r * k + c] = silu(x[c]) * up[c];
    } else {
      for (int64_t c = threadIdx.x; c < k; c += blockDim.x) xs[r * k + c] = x[c];
    }
  }
  __syncthreads();
}

// The warp's sums of output row `row` for each input row, plus the bias, into y (lane r writes row r).
__device__ __forceinline__ void write_rows(const GemvArgs& a, const GemvOutput& o, int64_t row, int lane, int m,
                                           const float (&acc)[kGemvMaxRows]) {
  const int64_t y_stride = o.y_stride == 0 ? o.n : o.y_stride;
  const float bias = o.bias != nullptr ? o.bias[row] : 0.0f;
#pragma unroll
  for (int r = 0; r < kGemvMaxRows; ++r) {
    if (r >= m) break;
    const float sum = warp_sum(acc[r]) + bias;
    if (lane == r) {
      float* y = o.y + r * y_stride + row;
      *y = a.accumulate ? *y + sum : sum;
    }
  }
}

// acc[r] += w · input row r at columns [c, c + 8), for the m input rows (staged in xs, or from x).
template <bool STAGED>
__device__ __forceinline__ void accumulate8(const GemvArgs& a, const float* xs, int64_t c, int m, const float (&w)[8],
                                            float (&acc)[kGemvMaxRows]) {
#pragma unroll
  for (int r = 0; r < kGemvMaxRows; ++r) {
    if (r >= m) break;
    const float* xr = STAGED ? xs + r * a.k + c : input_row(a, r) + c;
    const float4 x0 = *reinterpret_cast<const float4*>(xr);
    const float4 x1 = *reinterpret_cast<const float4*>(xr + 4);
    acc[r] += w[0] * x0.x + w[1] * x0.y + w[2] * x0.z + w[3] * x0.w + w[4] * x1.x + w[5] * x1.y + w[6] * x1.z +
              w[7] * x1.w;
  }
}

// STAGED: the input rows are in shared memory (xs), else read from global memory (plain input).
// VEC: 16-byte loads (k % 8 == 0, aligned rows), else one element per lane and step.
template <bool BF16, bool STAGED, bool VEC>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const GemvArgs a) {
  extern __shared__ float xs[];
  if constexpr (STAGED) stage_input(a, xs);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t row = int64_t{blockIdx.x} * kWarps + warp;
  GemvOutput o;
  if (!select_output(a, row, o)) return;
  const int64_t k = a.k, w_row = row * k;
  const int m = static_cast<int>(a.m);
  float acc[kGemvMaxRows];
#pragma unroll
  for (int r = 0; r < kGemvMaxRows; ++r) acc[r] = 0.0f;

  if constexpr (VEC) {
#pragma unroll 4
    for (int64_t c = lane * 8; c < k; c += 32 * 8) {
      float w[8];
      load8<BF16>(o, w_row + c, w);
      accumulate8<STAGED>(a, xs, c, m, w, acc);
    }
  } else {
    for (int64_t c = lane; c < k; c += 32) {
      const float w = load1<BF16>(o, w_row + c);
#pragma unroll
      for (int r = 0; r < kGemvMaxRows; ++r) {
        if (r >= m) break;
        acc[r] += w * (STAGED ? xs[r * k + c] : input_row(a, r)[c]);
      }
    }
  }
  write_rows(a, o, row, lane, m, acc);
}

// The pipelined loop (GemvArgs::pipelined; 16-byte loads only). Lane `lane` of the row's warp reads
// the weights [c, c + 8) for c = lane * 8 + j * 256, j = 0, 1, ..., as the plain loop does, in
// chunks of kChunk such loads: the first chunk is issued before the block stages its input (so the
// staging's reads, reductions and barrier overlap the weights' latency), and each next chunk
// before the current one is multiplied.
constexpr int kChunk = 4;
constexpr int64_t kChunkSpan = 32 * 8 * kChunk;  // columns of a row one chunk covers

template <bool BF16>
__device__ __forceinline__ void issue_chunk(const GemvOutput& o, int64_t w_row, int64_t k, int64_t base, int lane,
                                            Load8<BF16> (&l)[kChunk]) {
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    const int64_t c = base + i * 256 + lane * 8;
    if (c < k) issue8<BF16>(o, w_row + c, l[i]);
  }
}

template <bool BF16, bool STAGED>
__global__ void __launch_bounds__(kThreads) gemv_pipelined_kernel(const GemvArgs a) {
  extern __shared__ float xs[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t row = int64_t{blockIdx.x} * kWarps + warp;
  GemvOutput o;
  const bool valid = select_output(a, row, o);  // a warp past the last row still helps to stage
  const int64_t k = a.k, w_row = row * k;
  Load8<BF16> cur[kChunk], next[kChunk];
  if (valid) issue_chunk<BF16>(o, w_row, k, 0, lane, cur);
  if constexpr (STAGED) stage_input(a, xs);
  if (!valid) return;
  const int m = static_cast<int>(a.m);
  float acc[kGemvMaxRows];
#pragma unroll
  for (int r = 0; r < kGemvMaxRows; ++r) acc[r] = 0.0f;
  for (int64_t base = 0; base < k; base += kChunkSpan) {
    const bool more = base + kChunkSpan < k;
    if (more) issue_chunk<BF16>(o, w_row, k, base + kChunkSpan, lane, next);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) {
      const int64_t c = base + i * 256 + lane * 8;
      if (c >= k) break;
      float w[8];
      unpack8<BF16>(cur[i], w);
      accumulate8<STAGED>(a, xs, c, m, w, acc);
    }
    if (more)
#pragma unroll
      for (int i = 0; i < kChunk; ++i) cur[i] = next[i];
  }
  write_rows(a, o, row, lane, m, acc);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <bool BF16>
void launch(cudaStream_t stream, const GemvArgs& a, bool staged, bool vec, unsigned blocks) {
  const size_t smem = staged ? static_cast<size_t>(a.m * a.k) * sizeof(float) : 0;
  if (a.pipelined && vec && staged) gemv_pipelined_kernel<BF16, true><<<blocks, kThreads, smem, stream>>>(a);
  else if (a.pipelined && vec) gemv_pipelined_kernel<BF16, false><<<blocks, kThreads, 0, stream>>>(a);
  else if (staged && vec) gemv_kernel<BF16, true, true><<<blocks, kThreads, smem, stream>>>(a);
  else if (staged) gemv_kernel<BF16, true, false><<<blocks, kThreads, smem, stream>>>(a);
  else if (vec) gemv_kernel<BF16, false, true><<<blocks, kThreads, 0, stream>>>(a);
  else gemv_kernel<BF16, false, false><<<blocks, kThreads, 0, stream>>>(a);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

}  // namespace

void configure_gemv() {
  const int bytes = static_cast<int>(kStageBytes);
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<true, true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<true, true, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<false, true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<false, true, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(gemv_pipelined_kernel<true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(gemv_pipelined_kernel<false, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

void gemv(cudaStream_t stream, const GemvArgs& args) {
  if (args.m < 1 || args.m > kGemvMaxRows || args.n_out < 1 || args.n_out > 3)
    fail<DeviceError>("gemv: {} rows and {} outputs (1..{} rows, 1..3 outputs)", args.m, args.n_out, kGemvMaxRows);
  GemvArgs a = args;
  const int64_t stride = a.x_stride == 0 ? a.k : a.x_stride;
  const bool staged = a.m * a.k * static_cast<int64_t>(sizeof(float)) <= kStageBytes;
  if (!staged && a.input == GemvInput::rmsnorm) {  // too wide to stage: normalise first, then a plain product
    rmsnorm(stream, a.xn, a.x, a.norm_weight, a.m, a.k, a.eps, 1.0f, stride);
    a.input = GemvInput::plain;
    a.x = a.xn;
    a.x_stride = 0;
  } else if (!staged && a.input == GemvInput::swiglu) {  // the activation in place of gate
    for (int64_t r = 0; r < a.m; ++r)
      swiglu(stream, const_cast<float*>(a.x) + r * stride, a.x + r * stride, a.up + r * stride, a.k);
    a.input = GemvInput::plain;
  }
  const bool bf16 = a.out[0].w_bf16 != nullptr;
  bool vec = a.k % 8 == 0;
  int64_t rows = 0;
  for (int j = 0; j < a.n_out; ++j) {
    if ((a.out[j].w_bf16 != nullptr) != bf16)
      fail<DeviceError>("gemv: outputs sharing an input must share the weight dtype");
    vec = vec && aligned16(bf16 ? static_cast<const void*>(a.out[j].w_bf16) : a.out[j].w_f32);
    rows += a.out[j].n;
  }
  if (!staged) vec = vec && aligned16(a.x) && (a.x_stride == 0 ? a.k : a.x_stride) % 4 == 0;
  const unsigned blocks = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
  if (bf16) launch<true>(stream, a, staged, vec, blocks);
  else launch<false>(stream, a, staged, vec, blocks);
}

}  // namespace difftx::cuda
