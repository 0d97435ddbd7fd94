// Flash attention on the tensor cores (kernels/cuda/kernels.h: attention_mma), after Dao,
// "FlashAttention-2" (2023): each warp owns 16 query rows, keeps its queries as bfloat16 mma
// fragments in registers, and walks the keys in tiles of 64 with the softmax statistics (float32,
// base-2 exponentials of scores scaled by scale * log2 e) in registers; the score fragments become
// the A operand of P·V without leaving the registers. K and V tiles are copied into shared memory
// with cp.async, two stages deep. Differential attention runs both maps over the same value tile.
//
// mma.sync.m16n8k16 (bf16 in, f32 accumulate) fragment layout, lane = 4 g + t:
//   A (16x16, row-major): reg0 (row g, cols 2t, 2t+1), reg1 (row g+8, same), reg2 (row g, cols 2t+8, +9),
//                         reg3 (row g+8, cols 2t+8, +9)
//   B (16x8, k x n):      reg0 (k 2t, 2t+1; n g), reg1 (k 2t+8, 2t+9; n g)
//   C (16x8):             c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, cols 2t, 2t+1)
// (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type").
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/kernels.h"

namespace difftx::cuda {

namespace {

constexpr int kThreads = 128;  // 4 warps
constexpr int kRows = 64;      // query rows per block (16 per warp)
constexpr int kKeys = 64;      // keys per tile
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 bfloat16 matrices, transposed: lane l gives the address of row (l % 8) of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row_address) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16 bytes global -> shared, asynchronously; zeros when !valid (src is then not read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::); }

// Shared memory of one stage: K tiles of every map [MAPS][kKeys][D + 8], then the V tile
// [kKeys][WS + 8] (bfloat16; 8 elements of padding keep the fragment loads free of bank conflicts).
template <int D, int WS, int MAPS>
struct Tile {
  static constexpr int kStride = D + 8, vStride = WS + 8;
  static constexpr int kElems = MAPS * kKeys * kStride, vElems = kKeys * vStride;
  static constexpr int elems = kElems + vElems;
  static constexpr size_t bytes = 2 * static_cast<size_t>(elems) * sizeof(uint16_t);  // two stages
};

template <int D, int WS, int MAPS>
__global__ void __launch_bounds__(kThreads) flash_kernel(const AttentionArgs a, const uint16_t* kb,
                                                         const uint16_t* vb) {
  using L = Tile<D, WS, MAPS>;
  extern __shared__ __align__(16) uint16_t smem[];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int64_t slices = a.value_heads * a.d / WS;
  const int64_t q0 = (int64_t{gridDim.x} - 1 - blockIdx.x) * kRows;  // heaviest tiles first
  const int unit = blockIdx.y;
  const int64_t b = blockIdx.z / slices, c0 = (blockIdx.z % slices) * WS;
  const int64_t w = int64_t{a.value_heads} * D, off = a.S - a.T;
  const int vhead = a.heads[4 * a.units + unit * a.value_heads + static_cast<int>(c0 / D)];
  const int64_t vcol = c0 % D;
  int kh[MAPS];
  uint32_t qf[MAPS][D / 16][4];
  const int64_t row_a = q0 + warp * 16 + g, row_b = row_a + 8;  // this lane's two query rows
#pragma unroll
  for (int m = 0; m < MAPS; ++m) {
    kh[m] = a.heads[(2 + m) * a.units + unit];
    const int qh = a.heads[m * a.units + unit];
    const float* qa = a.q + (b * a.T + row_a) * a.q_stride + qh * D;
    const float* qb = a.q + (b * a.T + row_b) * a.q_stride + qh * D;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const int c = kk * 16 + 2 * t4;
      const float2 za = make_float2(0.0f, 0.0f);
      const float2 a0 = row_a < a.T ? *reinterpret_cast<const float2*>(qa + c) : za;
      const float2 a1 = row_b < a.T ? *reinterpret_cast<const float2*>(qb + c) : za;
      const float2 a2 = row_a < a.T ? *reinterpret_cast<const float2*>(qa + c + 8) : za;
      const float2 a3 = row_b < a.T ? *reinterpret_cast<const float2*>(qb + c + 8) : za;
      qf[m][kk][0] = pack_bf16x2(a0.x, a0.y);
      qf[m][kk][1] = pack_bf16x2(a1.x, a1.y);
      qf[m][kk][2] = pack_bf16x2(a2.x, a2.y);
      qf[m][kk][3] = pack_bf16x2(a3.x, a3.y);
    }
  }
  const int32_t seg_a = a.segments != nullptr && row_a < a.T ? a.segments[b * a.capacity + off + row_a] : 1;
  const int32_t seg_b = a.segments != nullptr && row_b < a.T ? a.segments[b * a.capacity + off + row_b] : 1;

  // Keys the block's rows may see: [lo, hi].
  const int64_t last_row = q0 + kRows - 1 < a.T - 1 ? q0 + kRows - 1 : a.T - 1;
  const int64_t hi = off + last_row;
  const int64_t lo = a.window > 0 && off + q0 - a.window + 1 > 0 ? off + q0 - a.window + 1 : 0;
  const int64_t first = lo / kKeys * kKeys;
  const int tiles = hi >= first ? static_cast<int>((hi - first) / kKeys + 1) : 0;

  auto load_tile = [&](int stage, int64_t s0) {
    uint16_t* base = smem + stage * L::elems;
#pragma unroll
    for (int m = 0; m < MAPS; ++m) {
      const uint16_t* src = kb + (b * a.n_k_heads + kh[m]) * a.S * D;
#pragma unroll
      for (int i = tid; i < kKeys * D / 8; i += kThreads) {
        const int key = i / (D / 8), part = i % (D / 8);
        const bool valid = s0 + key < a.S;
        cp_async16(base + (m * kKeys + key) * L::kStride + part * 8, valid ? src + (s0 + key) * D + part * 8 : src,
                   valid);
      }
    }
    const uint16_t* src = vb + (b * a.n_v_heads + vhead) * a.S * D + vcol;
#pragma unroll
    for (int i = tid; i < kKeys * WS / 8; i += kThreads) {
      const int key = i / (WS / 8), part = i % (WS / 8);
      const bool valid = s0 + key < a.S;
      cp_async16(base + L::kElems + key * L::vStride + part * 8, valid ? src + (s0 + key) * D + part * 8 : src, valid);
    }
  };

  float o[MAPS][WS / 8][4];
  float mx[MAPS][2], sum[MAPS][2];
#pragma unroll
  for (int m = 0; m < MAPS; ++m) {
    mx[m][0] = mx[m][1] = -INFINITY;
    sum[m][0] = sum[m][1] = 0.0f;
#pragma unroll
    for (int n = 0; n < WS / 8; ++n) o[m][n][0] = o[m][n][1] = o[m][n][2] = o[m][n][3] = 0.0f;
  }
  const float scale = a.scale * kLog2e;

  if (tiles > 0) load_tile(0, first);
  cp_async_commit();
  for (int it = 0; it < tiles; ++it) {
    const int64_t s0 = first + int64_t{it} * kKeys;
    if (it + 1 < tiles) load_tile((it + 1) & 1, s0 + kKeys);
    cp_async_commit();
    cp_async_wait_one();
    __syncthreads();
    const uint16_t* ks = smem + (it & 1) * L::elems;
    const uint16_t* vs = ks + L::kElems;
    // Does any key of the tile hide from any row of the block?
    const bool mask = s0 + kKeys - 1 > off + q0 || s0 + kKeys > a.S || a.segments != nullptr ||
                      (a.window > 0 && s0 < off + q0 + kRows - a.window);
#pragma unroll
    for (int m = 0; m < MAPS; ++m) {
      float s[kKeys / 8][4];
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
        for (int n = 0; n < kKeys / 8; ++n) {
          const uint16_t* krow = ks + (m * kKeys + n * 8 + g) * L::kStride + kk * 16 + 2 * t4;
          mma_bf16(s[n], qf[m][kk], *reinterpret_cast<const uint32_t*>(krow),
                   *reinterpret_cast<const uint32_t*>(krow + 8));
        }
      // Scale into the base-2 domain, mask, and the new row maxima.
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float v = s[n][e] * scale;
          if (mask) {
            const int64_t key = s0 + n * 8 + 2 * t4 + (e & 1);
            const int64_t i = off + (e < 2 ? row_a : row_b);
            bool see = key <= i && key < a.S && (a.window == 0 || i - key < a.window);
            if (see && a.segments != nullptr) {
              const int32_t sq = e < 2 ? seg_a : seg_b;
              see = sq != 0 && a.segments[b * a.capacity + key] == sq;
            }
            if (!see) v = -INFINITY;
          }
          s[n][e] = v;
          tile_max[e / 2] = fmaxf(tile_max[e / 2], v);
        }
      float alpha[2], ref[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(kFullMask, tile_max[h], 1));
        tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(kFullMask, tile_max[h], 2));
        const float m_new = fmaxf(mx[m][h], tile_max[h]);
        ref[h] = m_new == -INFINITY ? 0.0f : m_new;  // a row that has seen no key yet keeps p = 0
        alpha[h] = exp2f(mx[m][h] - ref[h]);
        mx[m][h] = m_new;
        sum[m][h] *= alpha[h];
      }
#pragma unroll
      for (int n = 0; n < WS / 8; ++n) {
        o[m][n][0] *= alpha[0];
        o[m][n][1] *= alpha[0];
        o[m][n][2] *= alpha[1];
        o[m][n][3] *= alpha[1];
      }
      // P = exp2(s - max), then O += P · V with P as the A operand.
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        float p[2][4];
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            p[h][e] = exp2f(s[2 * kk + h][e] - ref[e / 2]);
            sum[m][e / 2] += p[h][e];
          }
        const uint32_t pa[4] = {pack_bf16x2(p[0][0], p[0][1]), pack_bf16x2(p[0][2], p[0][3]),
                                pack_bf16x2(p[1][0], p[1][1]), pack_bf16x2(p[1][2], p[1][3])};
#pragma unroll
        for (int n = 0; n < WS / 8; n += 2) {
          uint32_t vf[4];
          ldmatrix_x4_trans(vf, vs + (kk * 16 + (lane & 15)) * L::vStride + n * 8 + (lane >> 4) * 8);
          mma_bf16(o[m][n], pa, vf[0], vf[1]);
          mma_bf16(o[m][n + 1], pa, vf[2], vf[3]);
        }
      }
    }
    __syncthreads();  // the next iteration's copy reuses this stage
  }

  // Row sums over the four lanes of each row, then the output.
  float inv[MAPS][2];
#pragma unroll
  for (int m = 0; m < MAPS; ++m)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float l = sum[m][h];
      l += __shfl_xor_sync(kFullMask, l, 1);
      l += __shfl_xor_sync(kFullMask, l, 2);
      inv[m][h] = l > 0.0f ? 1.0f / l : 0.0f;
    }
  const float out_scale = a.norm ? 1.0f : a.out_scale;  // with a norm, rmsnorm() applies it
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t row = h == 0 ? row_a : row_b;
    if (row >= a.T) continue;
    float* dst = a.out + (b * a.T + row) * a.out_stride + unit * w + c0 + 2 * t4;
#pragma unroll
    for (int n = 0; n < WS / 8; ++n) {
      float2 v;
      if constexpr (MAPS == 1) {
        v = make_float2(o[0][n][2 * h] * inv[0][h], o[0][n][2 * h + 1] * inv[0][h]);
      } else {
        v = make_float2((o[0][n][2 * h] * inv[0][h] - a.lambda * (o[1][n][2 * h] * inv[1][h])) * out_scale,
                        (o[0][n][2 * h + 1] * inv[0][h] - a.lambda * (o[1][n][2 * h + 1] * inv[1][h])) * out_scale);
      }
      *reinterpret_cast<float2*>(dst + n * 8) = v;
    }
  }
}

template <int D, int WS, int MAPS>
void launch(cudaStream_t stream, const AttentionArgs& a, const uint16_t* kb, const uint16_t* vb) {
  using L = Tile<D, WS, MAPS>;
  const int64_t slices = a.value_heads * a.d / WS;
  const dim3 grid(static_cast<unsigned>((a.T + kRows - 1) / kRows), static_cast<unsigned>(a.units),
                  static_cast<unsigned>(a.B * slices));
  flash_kernel<D, WS, MAPS><<<grid, kThreads, L::bytes, stream>>>(a, kb, vb);
  DIFFTX_CUDA_CHECK_LAUNCH();
}

template <int D, int WS, int MAPS>
void configure() {
  DIFFTX_CUDA_CHECK(cudaFuncSetAttribute(flash_kernel<D, WS, MAPS>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(Tile<D, WS, MAPS>::bytes)));
}

}  // namespace

void configure_attention_mma() {
  configure<64, 64, 1>();
  configure<128, 128, 1>();
  configure<64, 64, 2>();
  configure<128, 64, 2>();
}

bool attention_mma_supported(const AttentionArgs& a) {
  const bool no_stats = a.stat_m[0] == nullptr && a.stat_m[1] == nullptr && a.stat_a[0] == nullptr &&
                        a.stat_a[1] == nullptr;
  const bool aligned = a.q_stride % 2 == 0 && a.out_stride % 2 == 0;
  return no_stats && aligned && (a.d == 64 || a.d == 128) && (a.maps == 1 || a.maps == 2) && a.T > 0;
}

void attention_mma(cudaStream_t stream, const AttentionArgs& a, const uint16_t* kb, const uint16_t* vb) {
  if (!attention_mma_supported(a)) fail<DeviceError>("attention_mma: head_dim {} is not 64 or 128", a.d);
  if (a.B * a.units == 0) return;
  if (a.maps == 1) {
    if (a.d == 64) launch<64, 64, 1>(stream, a, kb, vb);
    else launch<128, 128, 1>(stream, a, kb, vb);
  } else {
    if (a.d == 64) launch<64, 64, 2>(stream, a, kb, vb);
    else launch<128, 64, 2>(stream, a, kb, vb);
  }
}

}  // namespace difftx::cuda
