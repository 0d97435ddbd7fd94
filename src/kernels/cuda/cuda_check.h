// Error checks for CUDA runtime and cuBLASLt calls: a failure becomes a difftx::DeviceError that
// names the call, the error and the source line.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "common/error.h"

namespace difftx::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line);

}  // namespace difftx::cuda

#define DIFFTX_CUDA_CHECK(call)                                                                   \
  do {                                                                                            \
    const cudaError_t difftx_error_ = (call);                                                     \
    if (difftx_error_ != cudaSuccess) ::difftx::cuda::throw_cuda_error(difftx_error_, #call, __FILE__, __LINE__); \
  } while (0)

#define DIFFTX_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                             \
    const cublasStatus_t difftx_status_ = (call);                                                  \
    if (difftx_status_ != CUBLAS_STATUS_SUCCESS)                                                   \
      ::difftx::cuda::throw_cublas_error(difftx_status_, #call, __FILE__, __LINE__);               \
  } while (0)

// After a kernel launch: a bad launch configuration is reported at once.
#define DIFFTX_CUDA_CHECK_LAUNCH() DIFFTX_CUDA_CHECK(cudaGetLastError())
