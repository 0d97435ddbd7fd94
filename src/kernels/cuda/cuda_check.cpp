#include "kernels/cuda/cuda_check.h"

#include "kernels/cuda/cublaslt_library.h"

namespace difftx::cuda {

void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line) {
  fail<DeviceError>("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(error), cudaGetErrorString(error), call, file,
                    line);
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  fail<DeviceError>("cuBLAS error {} ({}) in {} at {}:{}", cublaslt().cublasLtGetStatusName(status),
                    cublaslt().cublasLtGetStatusString(status), call, file, line);
}

}  // namespace difftx::cuda
