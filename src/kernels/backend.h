// The backend seam: every operation the model's forward and backward passes and the optimizer need, behind one interface, with one
// implementation per backend (kernels/cpu/cpu_backend.h; kernels/cuda/cuda_backend.h when difftx is
// built with CUDA). src/model calls these operations and never a backend's kernels directly, so the
// passes are written once for every backend.
//
// Memory: the buffers an operation reads and writes (weights, activations, KV cache) belong to the
// backend that runs it: host memory for the CPU, device memory for CUDA. Pointers passed to an
// operation must address that backend's memory (Buffer). Host data crosses over only through
// upload/download; the host sees only what a workflow asks for (logits rows, chosen ids, losses).
//
// Ordering: operations run in the order they are called (a GPU backend queues them on one stream).
// download(), the *_host functions and synchronize() return when their results are on the host.
//
// Shapes follow the CPU kernels' headers, which state the formula of each operation:
// kernels/cpu/{linear,rmsnorm,rope,swiglu,attention,diff_attention,cross_entropy}.h and their
// backward halves (attention_backward.h, diff_attention_backward.h). Errors: a
// backend throws difftx::DeviceError (common/error.h) when its device fails or runs out of memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "kernels/op_types.h"

namespace difftx {

class Backend;

// A block of a backend's memory, released when the Buffer goes. Move-only.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* owner, void* data, size_t bytes) : owner_(owner), data_(data), bytes_(bytes) {}
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  template <class T>
  T* as() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }
  bool empty() const { return data_ == nullptr; }
  void reset();

 private:
  Backend* owner_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu", or "cuda:0 (NVIDIA H200)".
  virtual std::string name() const = 0;
  // True when the backend's memory is host memory (the CPU backend): training and the other
  // host-side paths (loss_and_backward, Model::weights()) need it.
  virtual bool host_memory() const = 0;

  // ---- memory ----
  // `bytes` of memory whose contents are unspecified until written. Throws DeviceError naming the
  // size when it does not fit.
  Buffer alloc(size_t bytes);
  Buffer alloc_zeroed(size_t bytes);
  // Bytes that can still be allocated and used, as far as the backend knows; 0: unknown. The CPU
  // reports /proc/meminfo's MemAvailable (the kernel hands out pages lazily, so an allocation
  // beyond it succeeds and the process is killed when the pages are touched); a GPU's allocations
  // fail at once instead.
  virtual uint64_t available_bytes() const { return 0; }
  template <class T>
  Buffer alloc_array(int64_t count) { return alloc(static_cast<size_t>(count) * sizeof(T)); }
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  // rows x row_bytes from host rows host_pitch bytes apart to rows dst_pitch bytes apart.
  virtual void upload_rows(void* dst, size_t dst_pitch, const void* host_src, size_t host_pitch, size_t row_bytes,
                           int64_t rows) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // ---- forward operations (float32 activations; weights float32 or bfloat16) ----
  // out[i, :] = float32(table[ids[i], :]) for i < n; table [V, dim]; ids on the backend.
  virtual void embedding_forward(const int32_t* ids, int64_t n, LinearWeight table, int64_t dim, float* out) = 0;
  // kernels/cpu/rmsnorm.h; out may alias x.
  virtual void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t rows, int64_t dim,
                               float eps) = 0;
  // kernels/cpu/linear.h: y[m, n] (+)= x[m, k] · w[n, k]^T (+ bias).
  virtual void linear_forward(const float* x, int64_t m, int64_t k, LinearWeight w, const float* bias, int64_t n,
                              float* y, bool accumulate, int64_t x_stride = 0, int64_t y_stride = 0) = 0;
  // xn = rmsnorm(x) (written: a training trace keeps it), then each out.y = xn · out.w^T (+ bias):
  // the pre-norm projections of a decoder layer (q/k/v; gate/up). x, xn: [m, k].
  virtual void rmsnorm_linear_forward(const float* x, int64_t m, int64_t k, const float* norm_weight, float eps,
                                      float* xn, std::span<const LinearOut> outs) = 0;
  // y[m, n] (+)= (silu(gate) * up)[m, k] · w[n, k]^T (+ bias): the MLP's down projection.
  // gate is working memory (it may be overwritten); up is kept.
  virtual void swiglu_linear_forward(float* gate, const float* up, int64_t m, int64_t k, LinearWeight w,
                                     const float* bias, int64_t n, float* y, bool accumulate) = 0;
  // RoPE (kernels/cpu/rope.h) on q rows [rows, q_heads, d] (stride q_stride) and k rows [rows, k_heads, d]
  // (stride k_stride) in place, then the keys and values [B*T, heads * d] are written into the
  // caches [B, heads, capacity, d] at positions [past, past + T). cos, sin: [rows, d/2], rows = B*T.
  virtual void rope_cache_write(float* q, int64_t q_heads, int64_t q_stride, float* k, int64_t k_heads,
                                int64_t k_stride, const float* v, int64_t v_heads, int64_t B, int64_t T, int64_t d,
                                const float* cos, const float* sin, float* k_cache, float* v_cache, int64_t capacity,
                                int64_t past) = 0;
  // kernels/cpu/attention.h. stats_m/stats_l may be nullptr (a backend without training support
  // throws DeviceError when they are not).
  virtual void attention_forward(const AttentionShape& shape, const float* q, int64_t q_stride, const float* k,
                                 const float* v, const int32_t* segments, float scale, float* out, int64_t out_stride,
                                 float* stats_m = nullptr, float* stats_l = nullptr) = 0;
  // kernels/cpu/diff_attention.h.
  virtual void diff_attention_forward(const AttentionShape& shape, const DiffHeadMap& map,
                                      const DiffAttentionParams& params, const float* q, int64_t q_stride,
                                      const float* k, const float* v, const int32_t* segments, float* out,
                                      int64_t out_stride, const DiffAttentionStats* stats = nullptr) = 0;
  // kernels/cpu/lambda_combine.h: diff-v2's out[t, i] = a[t, 2i] - mix * sigmoid(z[t, i]) a[t, 2i+1];
  // a [n, 2 * heads, d], z [n, heads], out [n, heads, d].
  virtual void lambda_combine_forward(const float* a, const float* z, float mix, int64_t n, int64_t heads, int64_t d,
                                      float* out) = 0;
  // dst[r, :] = src[r * src_row_step + src_row_offset, :] for r < rows, rows of `dim` floats
  // (the last position of each sequence: src_row_step = T, offset = T - 1).
  virtual void gather_rows(float* dst, const float* src, int64_t rows, int64_t dim, int64_t src_row_step,
                           int64_t src_row_offset) = 0;

  // ---- training operations (float32 weights; host memory on the CPU backend) ----
  // Each accumulates (+=) into its gradient outputs, as the CPU kernels' headers state. A backend
  // without training support throws DeviceError naming itself (the defaults in backend.cpp).
  // kernels/cpu/linear.h: dx += dy · w, dw += dy^T · x, db += column sums of dy (each skipped when nullptr).
  // w: float32 or (a frozen matrix) bfloat16.
  virtual void linear_backward(const float* x, int64_t m, int64_t k, LinearWeight w, int64_t n, const float* dy,
                               float* dx, float* dw, float* db);
  // kernels/cpu/rmsnorm.h; weight and dweight may be nullptr.
  virtual void rmsnorm_backward(float* dx, float* dweight, const float* dy, const float* x, const float* weight,
                                int64_t rows, int64_t dim, float eps);
  // kernels/cpu/swiglu.h: out = silu(gate) * up (the backward recomputes it), and its backward.
  virtual void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
  virtual void swiglu_backward(float* d_gate, float* d_up, const float* d_out, const float* gate, const float* up,
                               int64_t n);
  // kernels/cpu/rope.h: the gradient of the rotated rows back to the unrotated ones, in place.
  virtual void rope_backward(float* dx, int64_t rows, int64_t heads, int64_t d, int64_t stride, const float* cos,
                             const float* sin);
  // rows[b * T + t, h * d + x] += cache[b, h, t, x] for a cache of capacity T: key and value
  // gradients from the cache layout back to the projections' layout [B*T, heads * d].
  virtual void cache_rows_add(const float* cache, int64_t B, int64_t T, int64_t heads, int64_t d, float* rows);
  // kernels/cpu/attention_backward.h: m, l the forward's statistics; out, d_out [B, T, H, d].
  virtual void attention_backward(const AttentionShape& shape, const float* q, int64_t q_stride, const float* k,
                                  const float* v, const int32_t* segments, float scale, const float* m,
                                  const float* l, const float* out, const float* d_out, const AttentionGrads& grads);
  // kernels/cpu/diff_attention_backward.h; returns dLoss/dlambda (of params.lambda) to the host.
  virtual double diff_attention_backward(const AttentionShape& shape, const DiffHeadMap& map,
                                         const DiffAttentionParams& params, const float* q, int64_t q_stride,
                                         const float* k, const float* v, const int32_t* segments,
                                         const DiffAttentionStats& stats, const float* d_out,
                                         const AttentionGrads& grads);
  // kernels/cpu/lambda_combine.h: the gradients of lambda_combine_forward into d_a and d_z.
  virtual void lambda_combine_backward(const float* a, const float* z, float mix, const float* d_out, int64_t n,
                                       int64_t heads, int64_t d, float* d_a, float* d_z);
  // For the monitor: sum over keys of P^2 per row of the 2 * Hd maps, [B, 2 * Hd, T].
  virtual void diff_attention_square_sums(const AttentionShape& shape, const DiffHeadMap& map, float scale,
                                          const float* q, int64_t q_stride, const float* k, const int32_t* segments,
                                          const DiffAttentionStats& stats, float* square_sums);
  // d_table[ids[i], :] += dy[i, :] for i < n (ids on the backend; repeated ids add up in order).
  virtual void embedding_backward(const int32_t* ids, int64_t n, const float* dy, int64_t dim, float* d_table);
  // kernels/cpu/cross_entropy.h: returns the loss summed over counted rows (host targets) and, when
  // want_grad, overwrites logits with grad_scale * dLoss/dlogits.
  virtual double cross_entropy_host(float* logits, const int32_t* targets, int64_t rows, int64_t V, float grad_scale,
                                    bool want_grad);
  // The optimizer's element-wise work over pieces of the parameter buffer (train/optimizer.h
  // states the formulas). Pieces run in parallel; within a piece elements run in order, so results
  // do not depend on the thread count. Returns whether every updated parameter is finite (the
  // trainer's divergence check then needs no pass of its own over the weights).
  virtual bool adamw_update(std::span<const AdamWPiece> pieces, const AdamWStep& step);
  // sums[i] = sum of x^2 over pieces[i], in double.
  virtual void sum_squares_host(std::span<const AdamWPiece> pieces, double* sums);
  // grad *= factor over every piece.
  virtual void scale_grads(std::span<const AdamWPiece> pieces, float factor);

  // ---- results for the host ----
  // Sum over rows of -log softmax(logits[r])[targets[r]] (kernels/cpu/cross_entropy.h: token_nll),
  // in double; targets are host ids, kIgnoreIndex rows count nothing. logits: [rows, V].
  virtual double nll_sum_host(const float* logits, int64_t rows, int64_t V, const int32_t* targets) = 0;
  // ids[r] = argmax of logits[r, :] (the lowest id among equal maxima), into host memory.
  virtual void argmax_host(const float* logits, int64_t rows, int64_t V, int32_t* ids) = 0;

 protected:
  friend class Buffer;
  virtual void* allocate(size_t bytes) = 0;  // nullptr when it does not fit
  virtual void release(void* data) noexcept = 0;
};

// How a backend may round inside its operations. f32: float32 arithmetic throughout (no TF32;
// bfloat16 weights are widened exactly), for comparisons and the default. bf16: PyTorch autocast's
// rule: the matrix products take bfloat16 operands with float32 accumulation and float32 outputs
// (kernels/cpu/gemm.h on the CPU, tensor cores on a GPU, where the attention scores and values are
// bf16 products too); norms, softmax statistics, RoPE, lambda and the residual stream stay float32.
// On the CPU the attention kernels stay float32 in both modes.
enum class MathMode { f32, bf16 };

// The process's CPU backend for a math mode (stateless; OpenMP threads, oneDNN and OpenBLAS).
// bf16 where the CPU has no native bf16 products (kernels/cpu/gemm.h: gemm_bf16_available) gives
// the f32 backend after one warning.
std::shared_ptr<Backend> cpu_backend(MathMode math = MathMode::f32);

// Whether the CPU backend's bf16 products run natively here (AVX512_BF16 or AMX through oneDNN),
// rather than falling back to float32.
bool cpu_has_native_bf16();

// Logs a warning when the CPU's dense products run on kernels far slower than the machine allows
// (OpenBLAS built for another CPU; kernels/cpu/blas_diagnostics.h), naming the setting to try.
void warn_about_slow_cpu_kernels();

// "cpu", "cuda" (= "cuda:0") or "cuda:N". Throws ConfigError for another name, and DeviceError
// saying why when CUDA is asked for but difftx was built without it or no such GPU is visible.
std::shared_ptr<Backend> make_backend(std::string_view device, MathMode math = MathMode::f32);

// Whether this build has the CUDA backend (CMake option DIFFTX_CUDA).
bool built_with_cuda();

}  // namespace difftx
