#include "kernels/backend.h"

#include <charconv>

#include "common/error.h"
#include "kernels/cpu/blas_diagnostics.h"
#include "kernels/cpu/cpu_backend.h"
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

void warn_about_slow_cpu_kernels() { warn_about_slow_openblas_kernels(); }

std::shared_ptr<Backend> cpu_backend() {
  static const std::shared_ptr<Backend> backend = make_cpu_backend();
  return backend;
}

bool built_with_cuda() { return DIFFTX_HAVE_CUDA != 0; }

std::shared_ptr<Backend> make_backend(std::string_view device, MathMode math) {
  if (device == "cpu") return cpu_backend();
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
