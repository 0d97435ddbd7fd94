#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <new>

#include "common/huge_pages.h"
#include "common/log.h"
#include "common/parallel.h"
#include <cmath>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_backward.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/diff_attention.h"
#include "kernels/cpu/diff_attention_backward.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemv.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/lambda_combine.h"
#include "kernels/cpu/swiglu.h"

namespace difftx {

namespace {

constexpr std::align_val_t kAlignment{64};  // every buffer starts on a cache line

// Copies rows of a [B*T, heads*d] projection (rows src_stride floats apart) into the cache layout
// [B, heads, capacity, d] at `past`.
void scatter_kv(const float* src, int64_t src_stride, int64_t B, int64_t T, int64_t heads, int64_t d, float* dst,
                int64_t capacity, int64_t past) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < heads; ++h)
        std::memcpy(dst + ((b * heads + h) * capacity + past + t) * d, src + (b * T + t) * src_stride + h * d,
                    sizeof(float) * d);
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(GemmPrecision precision) : precision_(precision) {}
  std::string name() const override { return precision_ == GemmPrecision::bf16 ? "cpu (bf16)" : "cpu"; }
  bool host_memory() const override { return true; }
  uint64_t available_bytes() const override {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    uint64_t kib = 0;
    std::string unit;
    while (meminfo >> key >> kib >> unit)
      if (key == "MemAvailable:") return kib * 1024;
    return 0;
  }

  void upload(void* dst, const void* src, size_t bytes) override { copy_bytes(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { copy_bytes(dst, src, bytes); }
  void upload_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
                   int64_t rows) override {
    for (int64_t r = 0; r < rows; ++r)
      copy_bytes(static_cast<char*>(dst) + r * dst_pitch, static_cast<const char*>(src) + r * src_pitch, row_bytes);
  }
  void zero(void* dst, size_t bytes) override {
    if (bytes > 0) std::memset(dst, 0, bytes);
  }
  void synchronize() override {}

  void embedding_forward(const int32_t* ids, int64_t n, LinearWeight table, int64_t dim, float* out) override {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = static_cast<int64_t>(ids[i]) * dim;
      if (table.f32 != nullptr) std::memcpy(out + i * dim, table.f32 + row, sizeof(float) * dim);  // also beside a bf16 copy
      else bf16_rows_to_f32(table.bf16 + row, 1, dim, out + i * dim);
    }
  }
  void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t rows, int64_t dim,
                       float eps) override {
    difftx::rmsnorm_forward(out, x, weight, rows, dim, eps);
  }
  void linear_forward(const float* x, int64_t m, int64_t k, LinearWeight w, const float* bias, int64_t n, float* y,
                      bool accumulate, int64_t x_stride, int64_t y_stride) override {
    difftx::linear_forward(x, m, k, w, bias, n, y, accumulate, x_stride, y_stride, precision_);
  }
  void rmsnorm_linear_forward(const float* x, int64_t m, int64_t k, const float* norm_weight, float eps, float* xn,
                              std::span<const LinearOut> outs) override {
    difftx::rmsnorm_forward(xn, x, norm_weight, m, k, eps);
    linear_forward_shared_input(xn, m, k, outs, precision_);
  }
  void swiglu_linear_forward(float* gate, const float* up, int64_t m, int64_t k, LinearWeight w, const float* bias,
                             int64_t n, float* y, bool accumulate) override {
    swiglu_forward(gate, gate, up, m * k);
    difftx::linear_forward(gate, m, k, w, bias, n, y, accumulate, 0, 0, precision_);
  }
  void rope_cache_write(float* q, int64_t q_heads, int64_t q_stride, float* k, int64_t k_heads, int64_t k_stride,
                        const float* v, int64_t v_heads, int64_t B, int64_t T, int64_t d, const float* cos,
                        const float* sin, float* k_cache, float* v_cache, int64_t capacity, int64_t past) override {
    rope_forward(q, B * T, q_heads, d, q_stride, cos, sin);
    rope_forward(k, B * T, k_heads, d, k_stride, cos, sin);
    scatter_kv(k, k_stride, B, T, k_heads, d, k_cache, capacity, past);
    scatter_kv(v, v_heads * d, B, T, v_heads, d, v_cache, capacity, past);
  }
  void attention_forward(const AttentionShape& shape, const float* q, int64_t q_stride, const float* k, const float* v,
                         const int32_t* segments, float scale, float* out, int64_t out_stride, float* stats_m,
                         float* stats_l) override {
    difftx::attention_forward(shape, q, q_stride, k, v, segments, scale, out, out_stride, stats_m, stats_l,
                              tile_products());
  }
  void diff_attention_forward(const AttentionShape& shape, const DiffHeadMap& map,
                              const DiffAttentionParams& params, const float* q, int64_t q_stride, const float* k,
                              const float* v, const int32_t* segments, float* out, int64_t out_stride,
                              const DiffAttentionStats* stats) override {
    difftx::diff_attention_forward(shape, map, params, q, q_stride, k, v, segments, out, out_stride, stats,
                                   tile_products());
  }
  void gather_rows(float* dst, const float* src, int64_t rows, int64_t dim, int64_t src_row_step,
                   int64_t src_row_offset) override {
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(dst + r * dim, src + (r * src_row_step + src_row_offset) * dim, sizeof(float) * dim);
  }

  void linear_backward(const float* x, int64_t m, int64_t k, LinearWeight w, int64_t n, const float* dy, float* dx,
                       float* dw, float* db) override {
    difftx::linear_backward(x, m, k, w, n, dy, dx, dw, db, precision_);
  }
  void rmsnorm_backward(float* dx, float* dweight, const float* dy, const float* x, const float* weight, int64_t rows,
                        int64_t dim, float eps) override {
    difftx::rmsnorm_backward(dx, dweight, dy, x, weight, rows, dim, eps);
  }
  void lambda_combine_forward(const float* a, const float* z, float mix, int64_t n, int64_t heads, int64_t d,
                              float* out) override {
    difftx::lambda_combine_forward(a, z, mix, n, heads, d, out);
  }
  void lambda_combine_backward(const float* a, const float* z, float mix, const float* d_out, int64_t n, int64_t heads,
                               int64_t d, float* d_a, float* d_z) override {
    difftx::lambda_combine_backward(a, z, mix, d_out, n, heads, d, d_a, d_z);
  }
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) override {
    difftx::swiglu_forward(out, gate, up, n);
  }
  void swiglu_backward(float* d_gate, float* d_up, const float* d_out, const float* gate, const float* up,
                       int64_t n) override {
    difftx::swiglu_backward(d_gate, d_up, d_out, gate, up, n);
  }
  void rope_backward(float* dx, int64_t rows, int64_t heads, int64_t d, int64_t stride, const float* cos,
                     const float* sin) override {
    difftx::rope_backward(dx, rows, heads, d, stride, cos, sin);
  }
  void cache_rows_add(const float* cache, int64_t B, int64_t T, int64_t heads, int64_t d, float* rows) override {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t t = 0; t < T; ++t) {
          const float* s = cache + ((b * heads + h) * T + t) * d;
          float* o = rows + ((b * T + t) * heads + h) * d;
          for (int64_t x = 0; x < d; ++x) o[x] += s[x];
        }
  }
  void attention_backward(const AttentionShape& shape, const float* q, int64_t q_stride, const float* k, const float* v,
                          const int32_t* segments, float scale, const float* m, const float* l, const float* out,
                          const float* d_out, const AttentionGrads& grads) override {
    difftx::attention_backward(shape, q, q_stride, k, v, segments, scale, m, l, out, d_out, grads, tile_products());
  }
  double diff_attention_backward(const AttentionShape& shape, const DiffHeadMap& map,
                                 const DiffAttentionParams& params, const float* q, int64_t q_stride, const float* k,
                                 const float* v, const int32_t* segments, const DiffAttentionStats& stats,
                                 const float* d_out, const AttentionGrads& grads) override {
    return difftx::diff_attention_backward(shape, map, params, q, q_stride, k, v, segments, stats, d_out, grads,
                                           tile_products());
  }
  void diff_attention_square_sums(const AttentionShape& shape, const DiffHeadMap& map, float scale, const float* q,
                                  int64_t q_stride, const float* k, const int32_t* segments,
                                  const DiffAttentionStats& stats, float* square_sums) override {
    difftx::diff_attention_square_sums(shape, map, scale, q, q_stride, k, segments, stats, square_sums,
                                       tile_products());
  }
  void embedding_backward(const int32_t* ids, int64_t n, const float* dy, int64_t dim, float* d_table) override {
    for (int64_t i = 0; i < n; ++i) {
      float* row = d_table + static_cast<int64_t>(ids[i]) * dim;
      for (int64_t x = 0; x < dim; ++x) row[x] += dy[i * dim + x];
    }
  }
  double cross_entropy_host(float* logits, const int32_t* targets, int64_t rows, int64_t V, float grad_scale,
                            bool want_grad) override {
    return cross_entropy_forward_backward(logits, targets, rows, V, grad_scale, want_grad);
  }
  bool adamw_update(std::span<const AdamWPiece> pieces, const AdamWStep& st) override {
    bool all_finite = true;
#pragma omp parallel for schedule(static) reduction(&& : all_finite)
    for (size_t i = 0; i < pieces.size(); ++i) {
      const AdamWPiece& p = pieces[i];
      const float decay = p.decay ? st.decay : 0.0f;
      float* x = p.x;
      const float* g = p.g;
      float* m = p.m;
      float* v = p.v;
      const float fb1 = st.beta1, fb2 = st.beta2;
      float zeros = 0.0f;  // the sum of x * 0: 0 while every new x is finite, NaN otherwise
#pragma omp simd reduction(+ : zeros)  // four separate buffers
      for (uint64_t j = 0; j < p.count; ++j) {
        const float xj = x[j] - decay * x[j];
        const float mj = fb1 * m[j] + (1.0f - fb1) * g[j];
        const float vj = fb2 * v[j] + (1.0f - fb2) * g[j] * g[j];
        m[j] = mj;
        v[j] = vj;
        const float updated = xj - st.step_size * mj / (std::sqrt(vj) * st.inv_sqrt_bias2 + st.eps);
        x[j] = updated;
        zeros += updated * 0.0f;
      }
      all_finite = all_finite && zeros == 0.0f;
    }
    return all_finite;
  }
  void sum_squares_host(std::span<const AdamWPiece> pieces, double* sums) override {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < pieces.size(); ++i) {
      const float* g = pieces[i].g;
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (uint64_t j = 0; j < pieces[i].count; ++j) s += static_cast<double>(g[j]) * g[j];
      sums[i] = s;
    }
  }
  void scale_grads(std::span<const AdamWPiece> pieces, float factor) override {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < pieces.size(); ++i) {
      float* g = pieces[i].g;
#pragma omp simd
      for (uint64_t j = 0; j < pieces[i].count; ++j) g[j] *= factor;
    }
  }

  double nll_sum_host(const float* logits, int64_t rows, int64_t V, const int32_t* targets) override {
    // Without gradients cross_entropy_forward_backward only reads the logits.
    return cross_entropy_forward_backward(const_cast<float*>(logits), targets, rows, V, 1.0f, /*want_grad=*/false);
  }
  void argmax_host(const float* logits, int64_t rows, int64_t V, int32_t* ids) override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = logits + r * V;
      ids[r] = static_cast<int32_t>(std::max_element(row, row + V) - row);
    }
  }

 protected:
  void* allocate(size_t bytes) override {
    void* p = ::operator new(std::max<size_t>(bytes, 1), kAlignment, std::nothrow);
    if (p != nullptr) advise_huge_pages(p, bytes);  // before the first write
    if (p != nullptr && bytes > 0) std::memset(p, 0, bytes);
    return p;
  }
  void release(void* data) noexcept override { ::operator delete(data, kAlignment); }

 private:
  // bf16 compute mode: attention's tile products in bf16 as well (autocast's matmuls).
  TileProducts tile_products() const {
    return precision_ == GemmPrecision::bf16 ? TileProducts::bf16 : TileProducts::f32;
  }

  GemmPrecision precision_;

  static void copy_bytes(void* dst, const void* src, size_t bytes) {
    if (bytes > 0 && dst != src) std::memcpy(dst, src, bytes);
  }
};

}  // namespace

std::shared_ptr<Backend> make_cpu_backend(MathMode math) {
  if (math == MathMode::bf16 && !gemm_bf16_available()) {
    spdlog::warn("bf16 compute: oneDNN has no native bf16 matrix products on this CPU (they need AVX512_BF16 or AMX, "
                 "and DNNL_MAX_CPU_ISA must allow them); computing in float32");
    math = MathMode::f32;
  }
  return std::make_shared<CpuBackend>(math == MathMode::bf16 ? GemmPrecision::bf16 : GemmPrecision::f32);
}

}  // namespace difftx
