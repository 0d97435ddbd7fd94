#include "kernels/backend.h"

#include <charconv>

#include "common/error.h"
#include "kernels/cpu/blas_diagnostics.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/gemm.h"
#if DIFFTX_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace difftx {

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = other.owner_;
    data_ = other.data_;
    bytes_ = other.bytes_;
    other.owner_ = nullptr;
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void Buffer::reset() {
  if (data_ != nullptr) owner_->release(data_);
  owner_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

Buffer Backend::alloc(size_t bytes) {
  void* p = allocate(bytes);
  if (p == nullptr)
    fail<DeviceError>("{}: out of memory allocating {:.3f} GB", name(), static_cast<double>(bytes) * 1e-9);
  return Buffer(this, p, bytes);
}

Buffer Backend::alloc_zeroed(size_t bytes) {
  Buffer b = alloc(bytes);
  zero(b.as<void>(), bytes);
  return b;
}

// The training operations of a backend that has none (the CUDA backend until it trains): each
// says which backend lacks what.
namespace {
[[noreturn]] void no_training(const Backend& be, const char* op) {
  fail<DeviceError>("{}: the {} backend has no training operations yet; training runs on the CPU backend", op,
                    be.name());
}
}  // namespace

void Backend::linear_backward(const float*, int64_t, int64_t, LinearWeight, int64_t, const float*, float*, float*,
                              float*) {
  no_training(*this, "linear_backward");
}
void Backend::rmsnorm_backward(float*, float*, const float*, const float*, const float*, int64_t, int64_t, float) {
  no_training(*this, "rmsnorm_backward");
}
void Backend::swiglu_forward(float*, const float*, const float*, int64_t) { no_training(*this, "swiglu_forward"); }
void Backend::swiglu_backward(float*, float*, const float*, const float*, const float*, int64_t) {
  no_training(*this, "swiglu_backward");
}
void Backend::rope_backward(float*, int64_t, int64_t, int64_t, int64_t, const float*, const float*) {
  no_training(*this, "rope_backward");
}
void Backend::cache_rows_add(const float*, int64_t, int64_t, int64_t, int64_t, float*) {
  no_training(*this, "cache_rows_add");
}
void Backend::attention_backward(const AttentionShape&, const float*, int64_t, const float*, const float*,
                                 const int32_t*, float, const float*, const float*, const float*, const float*,
                                 const AttentionGrads&) {
  no_training(*this, "attention_backward");
}
void Backend::lambda_combine_backward(const float*, const float*, float, const float*, int64_t, int64_t, int64_t,
                                      float*, float*) {
  no_training(*this, "lambda_combine_backward");
}
double Backend::diff_attention_backward(const AttentionShape&, const DiffHeadMap&, const DiffAttentionParams&,
                                        const float*, int64_t, const float*, const float*, const int32_t*,
                                        const DiffAttentionStats&, const float*, const AttentionGrads&) {
  no_training(*this, "diff_attention_backward");
}
void Backend::diff_attention_square_sums(const AttentionShape&, const DiffHeadMap&, float, const float*, int64_t,
                                         const float*, const int32_t*, const DiffAttentionStats&, float*) {
  no_training(*this, "diff_attention_square_sums");
}
void Backend::embedding_backward(const int32_t*, int64_t, const float*, int64_t, float*) {
  no_training(*this, "embedding_backward");
}
double Backend::cross_entropy_host(float*, const int32_t*, int64_t, int64_t, float, bool) {
  no_training(*this, "cross_entropy_host");
}
bool Backend::adamw_update(std::span<const AdamWPiece>, const AdamWStep&) {
  no_training(*this, "adamw_update");
  return false;
}
void Backend::sum_squares_host(std::span<const AdamWPiece>, double*) { no_training(*this, "sum_squares_host"); }
void Backend::scale_grads(std::span<const AdamWPiece>, float) { no_training(*this, "scale_grads"); }

bool cpu_has_native_bf16() { return gemm_bf16_available(); }

void warn_about_slow_cpu_kernels() { warn_about_slow_openblas_kernels(); }

std::shared_ptr<Backend> cpu_backend(MathMode math) {
  static const std::shared_ptr<Backend> f32 = make_cpu_backend(MathMode::f32);
  if (math == MathMode::f32) return f32;
  static const std::shared_ptr<Backend> bf16 = make_cpu_backend(MathMode::bf16);
  return bf16;
}

bool built_with_cuda() { return DIFFTX_HAVE_CUDA != 0; }

std::shared_ptr<Backend> make_backend(std::string_view device, MathMode math) {
  if (device == "cpu") return cpu_backend(math);
  if (device.substr(0, 4) != "cuda")
    fail<ConfigError>("--device \"{}\" is not one of cpu, cuda, cuda:N", device);
  int index = 0;
  if (device.size() > 4) {
    const std::string_view n = device.substr(4);
    const char* end = n.data() + n.size();
    const auto parsed = n.size() < 2 || n[0] != ':' ? std::from_chars_result{n.data(), std::errc::invalid_argument}
                                                     : std::from_chars(n.data() + 1, end, index);
    if (parsed.ec != std::errc() || parsed.ptr != end || index < 0)  // out of range too: never a silent cuda:0
      fail<ConfigError>("--device \"{}\" is not one of cpu, cuda, cuda:N (N = 0, 1, ...)", device);
  }
#if DIFFTX_HAVE_CUDA
  return make_cuda_backend(index, math);
#else
  (void)math;
  fail<DeviceError>("--device {}: this difftx was built without CUDA (configure with -DDIFFTX_CUDA=ON on a machine "
                    "with the CUDA toolkit)", device);
#endif
}

}  // namespace difftx
