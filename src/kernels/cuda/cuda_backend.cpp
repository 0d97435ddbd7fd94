#include "kernels/cuda/cuda_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <cmath>
#include <map>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cublaslt_gemm.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.h"

namespace difftx {

namespace {

using cuda::AttentionArgs;
using cuda::GemvArgs;
using cuda::GemvInput;
using cuda::kGemvMaxRows;

// Below this many query rows attention runs on the CUDA cores even in bf16 mode (decoding).
constexpr int64_t kMmaMinRows = 16;

// The CUDA runtime's current device is per host thread: the one this thread set last through a
// backend (a cudaSetDevice per operation costs more than the operation's launch on a slow host).
thread_local int current_device = -1;

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, MathMode math) : device_(device), math_(math) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
      fail<DeviceError>("--device cuda:{}: no usable CUDA device ({}: {})", device, cudaGetErrorName(e),
                        cudaGetErrorString(e));
    if (device >= count)
      fail<DeviceError>("--device cuda:{}: {} CUDA device{} visible (cuda:0{})", device, count, count == 1 ? " is" : "s are",
                        count > 1 ? fmt::format("..cuda:{}", count - 1) : "");
    DIFFTX_CUDA_CHECK(cudaSetDevice(device_));
    DIFFTX_CUDA_CHECK(cudaGetDeviceProperties(&props_, device_));
    DIFFTX_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    cudaMemPool_t pool = nullptr;
    DIFFTX_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
    uint64_t keep = UINT64_MAX;  // freed blocks stay in the pool for the next forward call
    DIFFTX_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    gemm_ = std::make_unique<cuda::LtGemm>();
    cuda::configure_gemv();
    cuda::configure_attention_mma();
    cuda::configure_attention_rows();
  }
  ~CudaBackend() override {
    cudaSetDevice(device_);
    current_device = device_;
    for (auto& s : scratch_) s = Buffer();
    heads_.clear();
    gemm_.reset();
    cudaStreamSynchronize(stream_);
    flush_cached_blocks();
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return fmt::format("cuda:{} ({})", device_, props_.name); }
  bool host_memory() const override { return false; }

  void upload(void* dst, const void* src, size_t bytes) override {
    activate();
    if (bytes > 0) DIFFTX_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void download(void* dst, const void* src, size_t bytes) override {
    activate();
    if (bytes > 0) DIFFTX_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  void upload_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
                   int64_t rows) override {
    activate();
    if (rows > 0 && row_bytes > 0)
      DIFFTX_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, static_cast<size_t>(rows),
                                          cudaMemcpyHostToDevice, stream_));
  }
  void zero(void* dst, size_t bytes) override {
    activate();
    if (bytes > 0) DIFFTX_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_));
  }
  void synchronize() override {
    activate();
    DIFFTX_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void embedding_forward(const int32_t* ids, int64_t n, LinearWeight table, int64_t dim, float* out) override {
    activate();
    cuda::embedding(stream_, ids, n, table.f32, table.bf16, dim, out);
  }
  void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t rows, int64_t dim,
                       float eps) override {
    activate();
    cuda::rmsnorm(stream_, out, x, weight, rows, dim, eps);
  }
  void linear_forward(const float* x, int64_t m, int64_t k, LinearWeight w, const float* bias, int64_t n, float* y,
                      bool accumulate, int64_t x_stride, int64_t y_stride) override {
    activate();
    if (x_stride == 0) x_stride = k;
    if (y_stride == 0) y_stride = n;
    if (use_gemv(m, w)) {
      GemvArgs a;
      a.pipelined = pipelined_gemv_;
      a.x = x;
      a.x_stride = x_stride;
      a.m = m;
      a.k = k;
      a.out[0] = {w.f32, w.bf16, bias, y, n, y_stride};
      a.n_out = 1;
      a.accumulate = accumulate;
      cuda::gemv(stream_, a);
      return;
    }
    gemm(x, x_stride, m, k, w, bias, n, y, y_stride, accumulate, /*x_bf16=*/nullptr);
  }
  void rmsnorm_linear_forward(const float* x, int64_t m, int64_t k, const float* norm_weight, float eps, float* xn,
                              std::span<const LinearOut> outs) override {
    activate();
    if (outs.size() <= 3 && same_weight_dtype(outs) && use_gemv(m, outs[0].w)) {
      GemvArgs a;
      a.pipelined = pipelined_gemv_;
      a.input = GemvInput::rmsnorm;
      a.x = x;
      a.m = m;
      a.k = k;
      a.norm_weight = norm_weight;
      a.eps = eps;
      a.xn = xn;
      for (const LinearOut& o : outs) a.out[a.n_out++] = {o.w.f32, o.w.bf16, o.bias, o.y, o.n, 0};
      cuda::gemv(stream_, a);
      return;
    }
    // In bf16 mode the norm also writes the products' bf16 input (one pass instead of two).
    bool bf16_input = false;
    for (const LinearOut& o : outs) bf16_input = bf16_input || (o.w.bf16 != nullptr && math_ == MathMode::bf16);
    uint16_t* xn_bf16 = bf16_input ? scratch_as<uint16_t>(kScratchInput, m * k) : nullptr;
    cuda::rmsnorm(stream_, xn, x, norm_weight, m, k, eps, 1.0f, 0, 1, xn_bf16);
    for (const LinearOut& o : outs) gemm(xn, k, m, k, o.w, o.bias, o.n, o.y, o.n, false, xn_bf16);
  }
  void swiglu_linear_forward(float* gate, const float* up, int64_t m, int64_t k, LinearWeight w, const float* bias,
                             int64_t n, float* y, bool accumulate) override {
    activate();
    if (use_gemv(m, w)) {
      GemvArgs a;
      a.pipelined = pipelined_gemv_;
      a.input = GemvInput::swiglu;
      a.x = gate;
      a.up = up;
      a.m = m;
      a.k = k;
      a.out[0] = {w.f32, w.bf16, bias, y, n, 0};
      a.n_out = 1;
      a.accumulate = accumulate;
      cuda::gemv(stream_, a);
      return;
    }
    if (w.bf16 != nullptr && math_ == MathMode::bf16) {  // the activation straight into the product's bf16 input
      uint16_t* act = scratch_as<uint16_t>(kScratchInput, m * k);
      cuda::swiglu_to_bf16(stream_, act, gate, up, m * k);
      gemm(gate, k, m, k, w, bias, n, y, n, accumulate, act);
      return;
    }
    cuda::swiglu(stream_, gate, gate, up, m * k);
    gemm(gate, k, m, k, w, bias, n, y, n, accumulate, nullptr);
  }
  void rope_cache_write(float* q, int64_t q_heads, int64_t q_stride, float* k, int64_t k_heads, int64_t k_stride,
                        const float* v, int64_t v_heads, int64_t B, int64_t T, int64_t d, const float* cos,
                        const float* sin, float* k_cache, float* v_cache, int64_t capacity, int64_t past) override {
    activate();
    cuda::rope_cache_write(stream_, q, q_heads, q_stride, k, k_heads, k_stride, v, v_heads, B, T, d, cos, sin, k_cache,
                           v_cache, capacity, past);
  }
  void attention_forward(const AttentionShape& sh, const float* q, int64_t q_stride, const float* k, const float* v,
                         const int32_t* segments, float scale, float* out, int64_t out_stride, float* stats_m,
                         float* stats_l) override {
    activate();
    AttentionArgs a = geometry(sh.batch, sh.q_len, sh.kv_len, sh.kv_capacity, sh.head_dim, sh.window, q, q_stride, k,
                               v, sh.n_k_heads, sh.n_v_heads, segments, out, out_stride);
    a.scale = scale;
    a.units = static_cast<int>(sh.n_q_heads);
    std::vector<int32_t> heads(static_cast<size_t>(5 * sh.n_q_heads));
    const int64_t G = sh.n_q_heads / sh.n_k_heads;
    for (int64_t h = 0; h < sh.n_q_heads; ++h) {
      heads[h] = heads[sh.n_q_heads + h] = static_cast<int32_t>(h);
      heads[2 * sh.n_q_heads + h] = heads[3 * sh.n_q_heads + h] = heads[4 * sh.n_q_heads + h] = static_cast<int32_t>(h / G);
    }
    a.heads = device_heads(heads);
    a.stat_m[0] = stats_m;
    a.stat_l[0] = stats_l;
    a.stat_units = a.units;
    run_attention(a);
  }
  void diff_attention_forward(const AttentionShape& sh, const DiffHeadMap& map, const DiffAttentionParams& p,
                              const float* q, int64_t q_stride, const float* k, const float* v, const int32_t* segments,
                              float* out, int64_t out_stride, const DiffAttentionStats* stats) override {
    activate();
    AttentionArgs a = geometry(sh.batch, sh.q_len, sh.kv_len, sh.kv_capacity, sh.head_dim, sh.window, q, q_stride, k,
                               v, sh.n_k_heads, sh.n_v_heads, segments, out, out_stride);
    const int64_t units = map.n_diff_heads();
    a.scale = p.scale;
    a.units = static_cast<int>(units);
    a.maps = 2;
    a.value_heads = static_cast<int>(map.value_heads);
    std::vector<int32_t> heads;
    for (const auto* part : {&map.q1, &map.q2, &map.k1, &map.k2, &map.v}) heads.insert(heads.end(), part->begin(), part->end());
    a.heads = device_heads(heads);
    a.lambda = p.lambda;
    a.out_scale = p.out_scale;
    a.norm = p.norm;
    a.norm_eps = p.norm_eps;
    a.norm_weight = p.norm_weight;
    if (stats != nullptr) {
      const int64_t w = map.value_heads * sh.head_dim;
      a.stat_units = static_cast<int>(2 * units);
      a.stat_m[0] = stats->m;
      a.stat_l[0] = stats->l;
      a.stat_m[1] = stats->m ? stats->m + units * sh.q_len : nullptr;
      a.stat_l[1] = stats->l ? stats->l + units * sh.q_len : nullptr;
      a.stat_a[0] = stats->a;
      a.stat_a[1] = stats->a ? stats->a + units * w : nullptr;
    }
    run_attention(a);
  }
  void lambda_combine_forward(const float* a, const float* z, float mix, int64_t n, int64_t heads, int64_t d,
                              float* out) override {
    cuda::lambda_combine(stream_, a, z, mix, n, heads, d, out);
  }
  void gather_rows(float* dst, const float* src, int64_t rows, int64_t dim, int64_t src_row_step,
                   int64_t src_row_offset) override {
    activate();
    cuda::gather_rows(stream_, dst, src, rows, dim, src_row_step, src_row_offset);
  }

  double nll_sum_host(const float* logits, int64_t rows, int64_t V, const int32_t* targets) override {
    activate();
    int32_t* t = scratch_as<int32_t>(kScratchIds, rows);
    double* nll = scratch_as<double>(kScratchResults, rows);
    upload(t, targets, sizeof(int32_t) * rows);
    cuda::nll_rows(stream_, logits, rows, V, t, nll);
    std::vector<double> host(static_cast<size_t>(rows));
    download(host.data(), nll, sizeof(double) * rows);
    double sum = 0.0;
    for (double x : host) sum += x;
    return sum;
  }
  void argmax_host(const float* logits, int64_t rows, int64_t V, int32_t* ids) override {
    activate();
    int32_t* d = scratch_as<int32_t>(kScratchIds, rows);
    cuda::argmax_rows(stream_, logits, rows, V, d);
    download(ids, d, sizeof(int32_t) * rows);
  }

 protected:
  // A caching allocator: a freed block waits in a list for the next request of its (rounded) size,
  // as a decoding step asks for the same sizes every token. Safe because every user of a block is
  // on the one stream, in order. When the device is full the cached blocks are returned and the
  // request retried.
  void* allocate(size_t bytes) override {
    activate();
    const size_t size = rounded(bytes);
    auto& list = cached_[size];
    if (!list.empty()) {
      void* p = list.back();
      list.pop_back();
      sizes_[p] = size;
      return p;
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      void* p = nullptr;
      const cudaError_t e = cudaMallocAsync(&p, size, stream_);
      if (e == cudaSuccess) {
        sizes_[p] = size;
        return p;
      }
      if (e != cudaErrorMemoryAllocation) DIFFTX_CUDA_CHECK(e);
      cudaGetLastError();  // clear it; give the cached blocks back and try once more
      flush_cached_blocks();
    }
    return nullptr;  // the caller reports the size
  }
  void release(void* data) noexcept override {  // the block is reused on this backend's stream only
    const auto it = sizes_.find(data);
    if (it == sizes_.end()) return;
    cached_[it->second].push_back(data);
    sizes_.erase(it);
  }

 private:
  // Working memory reused by consecutive operations (the stream orders them).
  enum ScratchSlot { kScratchInput, kScratchWeight, kScratchKeys, kScratchValues, kScratchAttention, kScratchIds,
                     kScratchResults, kScratchSlots };

  // The CUDA runtime's current device is per host thread; remember which one this thread set last
  // (a call per operation costs more than the operation's launch on a slow host).
  void activate() const {
    if (current_device != device_) {
      DIFFTX_CUDA_CHECK(cudaSetDevice(device_));
      current_device = device_;
    }
  }

  static size_t rounded(size_t bytes) {
    const size_t unit = bytes <= (size_t{1} << 20) ? 512 : (size_t{1} << 20);
    return (std::max<size_t>(bytes, 1) + unit - 1) / unit * unit;
  }
  void flush_cached_blocks() noexcept {
    for (auto& [size, list] : cached_)
      for (void* p : list) cudaFreeAsync(p, stream_);
    cached_.clear();
    cudaStreamSynchronize(stream_);
  }

  template <class T>
  T* scratch_as(ScratchSlot slot, int64_t count) {
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T);
    if (scratch_[slot].bytes() < bytes) {
      scratch_[slot] = Buffer();
      scratch_[slot] = alloc(bytes + bytes / 4);  // room to grow
    }
    return scratch_[slot].as<T>();
  }

  // Products of at most kGemvMaxRows rows take difftx's GEMV (float32 arithmetic), except bf16
  // weights in bf16 mode: cuBLASLt streams them faster even for one row (measured on an H200:
  // bench/cuda/NOTES.md), with the input rounded to bf16 as in every other bf16-mode product.
  // DIFFTX_CUDA_DECODE_GEMV=1 keeps the GEMV there too (for comparisons).
  bool use_gemv(int64_t m, LinearWeight w) const {
    if (m > kGemvMaxRows) return false;
    return !(w.bf16 != nullptr && math_ == MathMode::bf16) || force_gemv_;
  }

  static bool same_weight_dtype(std::span<const LinearOut> outs) {
    for (const LinearOut& o : outs)
      if ((o.w.bf16 != nullptr) != (outs[0].w.bf16 != nullptr)) return false;
    return true;
  }

  // y = x · w^T through cuBLASLt (m > kGemvMaxRows). bfloat16 weights take bfloat16 inputs in bf16
  // mode (x_bf16 if the caller has it rounded already) and are widened to float32 in f32 mode.
  void gemm(const float* x, int64_t x_stride, int64_t m, int64_t k, LinearWeight w, const float* bias, int64_t n,
            float* y, int64_t y_stride, bool accumulate, const uint16_t* x_bf16) {
    if (w.bf16 != nullptr && math_ == MathMode::bf16) {
      if (x_bf16 == nullptr) {
        uint16_t* dst = scratch_as<uint16_t>(kScratchInput, m * k);
        cuda::f32_to_bf16(stream_, dst, x, m, k, x_stride);
        x_bf16 = dst;
      }
      gemm_->run(stream_, true, x_bf16, k, m, k, w.bf16, n, bias, y, y_stride, accumulate);
      return;
    }
    const float* wf = w.f32;
    if (wf == nullptr) {
      float* widened = scratch_as<float>(kScratchWeight, n * k);
      cuda::bf16_to_f32(stream_, widened, w.bf16, n * k);
      wf = widened;
    }
    gemm_->run(stream_, false, x, x_stride, m, k, wf, n, bias, y, y_stride, accumulate);
  }

  AttentionArgs geometry(int64_t B, int64_t T, int64_t S, int64_t capacity, int64_t d, int64_t window, const float* q,
                         int64_t q_stride, const float* k, const float* v, int64_t n_k, int64_t n_v,
                         const int32_t* segments, float* out, int64_t out_stride) {
    AttentionArgs a;
    a.B = B;
    a.T = T;
    a.S = S;
    a.capacity = capacity;
    a.d = d;
    a.window = window;
    a.q = q;
    a.q_stride = q_stride;
    a.k = k;
    a.v = v;
    a.n_k_heads = n_k;
    a.n_v_heads = n_v;
    a.segments = segments;
    a.out = out;
    a.out_stride = out_stride;
    a.batched_loads = batched_attention_loads_;
    return a;
  }

  void run_attention(const AttentionArgs& a) {
    if (math_ == MathMode::bf16 && a.T >= kMmaMinRows && cuda::attention_mma_supported(a)) {
      uint16_t* kb = scratch_as<uint16_t>(kScratchKeys, a.B * a.n_k_heads * a.S * a.d);
      uint16_t* vb = scratch_as<uint16_t>(kScratchValues, a.B * a.n_v_heads * a.S * a.d);
      cuda::cache_to_bf16(stream_, kb, a.k, a.B * a.n_k_heads, a.S, a.capacity, a.d);
      cuda::cache_to_bf16(stream_, vb, a.v, a.B * a.n_v_heads, a.S, a.capacity, a.d);
      cuda::attention_mma(stream_, a, kb, vb);
      if (a.maps == 2 && a.norm)
        cuda::rmsnorm(stream_, a.out, a.out, a.norm_weight, a.B * a.T * a.units, a.width(), a.norm_eps, a.out_scale,
                      a.out_stride, a.units);
      return;
    }
    float* ws = scratch_as<float>(kScratchAttention, cuda::attention_rows_workspace(a, props_.multiProcessorCount));
    cuda::attention_rows(stream_, a, ws, props_.multiProcessorCount);
  }

  // A device copy of a head map, made once per distinct map.
  const int32_t* device_heads(const std::vector<int32_t>& heads) {
    auto found = heads_.find(heads);
    if (found == heads_.end()) {
      Buffer b = alloc(heads.size() * sizeof(int32_t));
      upload(b.as<void>(), heads.data(), b.bytes());
      found = heads_.emplace(heads, std::move(b)).first;
    }
    return found->second.as<const int32_t>();
  }

  int device_;
  MathMode math_;
  const bool force_gemv_ = [] {
    const char* e = std::getenv("DIFFTX_CUDA_DECODE_GEMV");
    return e != nullptr && std::string_view(e) == "1";
  }();
  // DIFFTX_CUDA_GEMV=pipelined: the GEMV's software-pipelined loop (kernels.h: GemvArgs::pipelined).
  const bool pipelined_gemv_ = [] {
    const char* e = std::getenv("DIFFTX_CUDA_GEMV");
    return e != nullptr && std::string_view(e) == "pipelined";
  }();
  // DIFFTX_CUDA_ATTENTION=batched-loads: attention_rows' batched tile copy (kernels.h: AttentionArgs).
  const bool batched_attention_loads_ = [] {
    const char* e = std::getenv("DIFFTX_CUDA_ATTENTION");
    return e != nullptr && std::string_view(e) == "batched-loads";
  }();
  cudaDeviceProp props_{};
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::LtGemm> gemm_;
  Buffer scratch_[kScratchSlots];
  std::map<std::vector<int32_t>, Buffer> heads_;
  std::map<size_t, std::vector<void*>> cached_;   // free blocks by rounded size
  std::unordered_map<void*, size_t> sizes_;        // blocks in use and their rounded size
};

}  // namespace

std::shared_ptr<Backend> make_cuda_backend(int device, MathMode math) {
  return std::make_shared<CudaBackend>(device, math);
}

}  // namespace difftx
