#include "kernels/cuda/cublaslt_library.h"

#include <dlfcn.h>

#include <string>

#include "common/error.h"

#ifndef DIFFTX_CUBLASLT_TOOLKIT_DIR
#define DIFFTX_CUBLASLT_TOOLKIT_DIR ""
#endif

namespace difftx::cuda {

namespace {

#define DIFFTX_STRINGIFY_INNER(x) #x
#define DIFFTX_STRINGIFY(x) DIFFTX_STRINGIFY_INNER(x)

CublasLtApi load() {
  const std::string name = "libcublasLt.so." DIFFTX_STRINGIFY(CUBLAS_VER_MAJOR);
  void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string reason = handle == nullptr ? dlerror() : "";
  const std::string toolkit = DIFFTX_CUBLASLT_TOOLKIT_DIR;
  if (handle == nullptr && !toolkit.empty()) {
    handle = dlopen((toolkit + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) reason += std::string("; ") + dlerror();
  }
  if (handle == nullptr)
    fail<DeviceError>("cannot load cuBLASLt ({}), which the CUDA backend needs: {}. Put the directory holding it "
                      "on LD_LIBRARY_PATH (the CUDA toolkit's lib/, or PyTorch's nvidia/cublas/lib)",
                      name, reason);
  CublasLtApi api;
#define DIFFTX_CUBLASLT_LOOKUP(fn)                                                                        \
  api.fn = reinterpret_cast<decltype(api.fn)>(dlsym(handle, #fn));                                        \
  if (api.fn == nullptr)                                                                                   \
    fail<DeviceError>("{} has no function {} (a cuBLASLt {} is needed)", name, #fn, CUBLAS_VER_MAJOR);
  DIFFTX_CUBLASLT_FUNCTIONS(DIFFTX_CUBLASLT_LOOKUP)
#undef DIFFTX_CUBLASLT_LOOKUP
  return api;  // the library stays loaded for the process's life
}

}  // namespace

const CublasLtApi& cublaslt() {
  static const CublasLtApi api = load();
  return api;
}

}  // namespace difftx::cuda
