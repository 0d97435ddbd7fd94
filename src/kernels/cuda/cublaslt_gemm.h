// Dense products through cuBLASLt (the GPU's GEMMs come from a library, not from difftx): y[m, n] (+)= x[m, k]
// · w[n, k]^T (+ bias[n]), row-major as PyTorch lays out Linear layers. x and w are both float32
// (CUBLAS_COMPUTE_32F: exact float32, no TF32) or both bfloat16 (float32 accumulation); y and bias
// are float32. The algorithm cuBLASLt's heuristic picks is cached per shape, type and alignment.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <tuple>

namespace difftx::cuda {

class LtGemm {
 public:
  LtGemm();
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // bf16: x and w are bfloat16 (uint16_t) when true, float32 when false. Strides in elements.
  void run(cudaStream_t stream, bool bf16, const void* x, int64_t x_stride, int64_t m, int64_t k, const void* w,
           int64_t n, const float* bias, float* y, int64_t y_stride, bool accumulate);

 private:
  using Key = std::tuple<bool, int64_t, int64_t, int64_t, int64_t, int64_t, bool, int, int, int, int>;
  // The descriptors and the algorithm of one shape, made once (a decoding step calls the same
  // shapes every token).
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Plan& plan(const Key& key, const void* bias);
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Key, Plan> plans_;
};

}  // namespace difftx::cuda
