// difftx's own CUDA kernels, as host functions that queue them on a stream. Every pointer is
// device memory; shapes and formulas are those of the CPU kernels named beside each (the CUDA
// backend's results are checked against them: tests/backend/backend_ops_test.cpp).
// Weights in bfloat16 are the upper 16 bits of a float32 (uint16_t here), widened exactly.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace difftx::cuda {

// ---- elementwise.cu ----

// out[i, :] = table[ids[i], :] (embedding), table [V, dim] in float32 or bfloat16 (one is set).
void embedding(cudaStream_t stream, const int32_t* ids, int64_t n, const float* table_f32, const uint16_t* table_bf16,
               int64_t dim, float* out);
// out = scale * weight * x / sqrt(mean(x^2) + eps) per row of dim (kernels/cpu/rmsnorm.h); weight
// may be nullptr. Row r starts at (r / group) * row_stride + (r % group) * dim floats (row_stride 0:
// dim, so rows are contiguous; group > 1: groups of adjacent rows, row_stride apart). out_bf16
// (optional, dense [rows, dim]) receives the result rounded to bfloat16 too (a product's input).
void rmsnorm(cudaStream_t stream, float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
             float scale = 1.0f, int64_t row_stride = 0, int64_t group = 1, uint16_t* out_bf16 = nullptr);
// RoPE on q and k in place, then k and v written into the caches (Backend::rope_cache_write).
void rope_cache_write(cudaStream_t stream, float* q, int64_t q_heads, int64_t q_stride, float* k, int64_t k_heads,
                      int64_t k_stride, const float* v, int64_t v_heads, int64_t B, int64_t T, int64_t d,
                      const float* cos, const float* sin, float* k_cache, float* v_cache, int64_t capacity,
                      int64_t past);
// out = silu(gate) * up, n elements (kernels/cpu/swiglu.h); out may alias gate.
void swiglu(cudaStream_t stream, float* out, const float* gate, const float* up, int64_t n);
// out[n] = bfloat16(silu(gate) * up): the down projection's input in bf16 mode.
void swiglu_to_bf16(cudaStream_t stream, uint16_t* out, const float* gate, const float* up, int64_t n);
// dst[r, :] = src[r * step + offset, :], rows of dim floats.
// diff-v2's paired combine (kernels/cpu/lambda_combine.h): out[t, i] = a[t, 2i] - mix * sigmoid(z[t, i]) a[t, 2i+1].
void lambda_combine(cudaStream_t stream, const float* a, const float* z, float mix, int64_t n, int64_t heads,
                    int64_t d, float* out);
void gather_rows(cudaStream_t stream, float* dst, const float* src, int64_t rows, int64_t dim, int64_t step,
                 int64_t offset);
// dst[rows, cols] (dense) = bfloat16(src[rows, cols]) rounded to nearest even; src rows src_stride apart.
void f32_to_bf16(cudaStream_t stream, uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t src_stride);
// dst[n] = float32(src[n]) (exact).
void bf16_to_f32(cudaStream_t stream, float* dst, const uint16_t* src, int64_t n);
// A KV cache [BH, capacity, d] (float32) -> [BH, S, d] bfloat16, the first S positions of each head.
void cache_to_bf16(cudaStream_t stream, uint16_t* dst, const float* src, int64_t BH, int64_t S, int64_t capacity,
                   int64_t d);
// ids[r] = argmax of logits[r, :] (lowest index among equal maxima).
void argmax_rows(cudaStream_t stream, const float* logits, int64_t rows, int64_t V, int32_t* ids);
// nll[r] = log(sum_v exp(logits[r, v] - max)) + max - logits[r, targets[r]] (kernels/cpu/cross_entropy.h:
// float32 exponentials, summed in double); 0 where targets[r] < 0 (ignored).
void nll_rows(cudaStream_t stream, const float* logits, int64_t rows, int64_t V, const int32_t* targets, double* nll);

// ---- gemv.cu: products with at most kGemvMaxRows rows of activations (decoding) ----

inline constexpr int64_t kGemvMaxRows = 8;

// What the product's input rows are: x itself, rmsnorm(x) with norm_weight (xn receives it), or
// silu(x) * up (the MLP's down projection).
enum class GemvInput { plain, rmsnorm, swiglu };

struct GemvOutput {
  const float* w_f32 = nullptr;      // [n, k], or
  const uint16_t* w_bf16 = nullptr;  // [n, k] bfloat16
  const float* bias = nullptr;       // [n] or nullptr
  float* y = nullptr;                // [m, n], rows y_stride floats apart (0: n)
  int64_t n = 0;
  int64_t y_stride = 0;
};

struct GemvArgs {
  GemvInput input = GemvInput::plain;
  const float* x = nullptr;   // [m, k], rows x_stride floats apart (0: k)
  const float* up = nullptr;  // [m, k] (swiglu; rows x_stride apart)
  int64_t x_stride = 0;
  int64_t m = 0, k = 0;
  const float* norm_weight = nullptr;  // [k] (rmsnorm)
  float eps = 0.0f;
  float* xn = nullptr;                 // [m, k] dense: receives rmsnorm(x) (rmsnorm)
  GemvOutput out[3];                   // products sharing the input (q/k/v, gate/up)
  int n_out = 0;
  bool accumulate = false;             // y += product (+ bias) instead of y =
  // The software-pipelined loop (16-byte loads only): each warp issues its row's first loads before
  // the block stages the input, and the next chunk's before it multiplies the current one. The same
  // sums in the same order as the plain loop. Opt-in (DIFFTX_CUDA_GEMV=pipelined) until a device
  // check has measured it (bench/cuda/NOTES.md).
  bool pipelined = false;
};

// y = input · w^T (+ bias), float32 arithmetic on float32 or widened bfloat16 weights: one warp
// streams each weight row once (16-byte loads when k % 8 == 0 and the rows are aligned; a scalar
// loop otherwise). Requires m <= kGemvMaxRows.
void gemv(cudaStream_t stream, const GemvArgs& args);

// Raises the shared-memory limits of the kernels that stage more than 48 KiB (gemv, the tensor-core
// attention) on the current device; once per device, before their first launch.
void configure_gemv();
void configure_attention_mma();
void configure_attention_rows();

// ---- attention.cu: standard and differential attention ----

// One description for both kinds: a "unit" is a query head (standard attention: one map) or a
// diff-head (differential: maps 1 and 2, out = out_scale * norm(A1 - lambda A2)). Map j of unit u
// reads query head heads[j * units + u] and key head heads[(2 + j) * units + u]; its values are the
// value heads heads[4 * units + u * value_heads + i] concatenated (w = value_heads * d columns).
// `heads` is device memory (the backend keeps one copy per head map).
struct AttentionArgs {
  int64_t B = 1, T = 0, S = 0, capacity = 0, d = 0, window = 0;
  float scale = 1.0f;
  const float* q = nullptr;  // [B, T, *, d], rows q_stride floats apart
  int64_t q_stride = 0;
  const float* k = nullptr;  // [B, n_k_heads, capacity, d]
  const float* v = nullptr;  // [B, n_v_heads, capacity, d]
  int64_t n_k_heads = 0, n_v_heads = 0;
  const int32_t* segments = nullptr;  // [B, capacity] or nullptr
  float* out = nullptr;      // [B, T, units, w], rows out_stride floats apart
  int64_t out_stride = 0;
  int units = 0, maps = 1, value_heads = 1;
  const int32_t* heads = nullptr;  // [(4 + value_heads) * units]
  // Differential output (maps == 2).
  float lambda = 0.0f, out_scale = 1.0f, norm_eps = 1e-6f;
  bool norm = false;
  const float* norm_weight = nullptr;  // [w] or nullptr
  // Optional statistics as the CPU kernels lay them out: m, l [B, stat_units, T] per map, and for
  // differential attention the maps' outputs a [B, T, stat_units, w] (map j's pointers start at its
  // first unit: differential attention keeps both maps in one list of 2 * units, op_types.h).
  int stat_units = 0;  // units per batch row of the statistics arrays (units, or 2 * units)
  float* stat_m[2] = {nullptr, nullptr};
  float* stat_l[2] = {nullptr, nullptr};
  float* stat_a[2] = {nullptr, nullptr};
  // attention_rows copies each key/value tile with its loads in batches of 8 per thread, all issued
  // before any is stored (the plain copy stores each load before the next: one memory round trip
  // per 128 floats). The same values. Opt-in (DIFFTX_CUDA_ATTENTION=batched-loads) until a device
  // check has measured it (bench/cuda/NOTES.md).
  bool batched_loads = false;

  int64_t width() const { return value_heads * d; }
};

// Attention on CUDA cores in float32: blocks of up to 4 query rows over tiles of 128 keys, the keys
// split among blocks when the rows alone do not fill the GPU (flash-decoding), the splits merged
// exactly by a second kernel that also forms the differential output and the statistics.
// Any head_dim up to 256 and width up to 512. workspace: attention_rows_workspace() floats.
int64_t attention_rows_workspace(const AttentionArgs& args, int sm_count);
void attention_rows(cudaStream_t stream, const AttentionArgs& args, float* workspace, int sm_count);

// Flash attention on the tensor cores (bfloat16 operands, float32 accumulation and softmax) for
// head_dim 64 or 128: 64 query rows per block, tiles of 64 keys loaded asynchronously two deep,
// the online softmax in registers. k and v are bfloat16 copies of the caches' first S positions,
// [B, heads, S, d] (cache_to_bf16). No statistics. The differential output's norm is applied by
// rmsnorm() afterwards when args.norm.
bool attention_mma_supported(const AttentionArgs& args);
void attention_mma(cudaStream_t stream, const AttentionArgs& args, const uint16_t* k_bf16, const uint16_t* v_bf16);

}  // namespace difftx::cuda
