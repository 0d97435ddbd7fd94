// cuBLASLt is loaded at the CUDA backend's first use (kernels/cuda/cublaslt_library.h), so this
// test runs on any machine with the toolkit's library, GPU or not (it needs no device).
#include "kernels/cuda/cublaslt_library.h"

#include <gtest/gtest.h>

#include <cstring>

namespace difftx::cuda {
namespace {

TEST(CublasLtLibrary, LoadsOnFirstUseWithEveryFunction) {
  const CublasLtApi& api = cublaslt();
#define DIFFTX_EXPECT_FOUND(fn) EXPECT_NE(api.fn, nullptr) << #fn;
  DIFFTX_CUBLASLT_FUNCTIONS(DIFFTX_EXPECT_FOUND)
#undef DIFFTX_EXPECT_FOUND
  // Functions of the loaded library answer (these two need no GPU).
  EXPECT_STREQ(api.cublasLtGetStatusName(CUBLAS_STATUS_SUCCESS), "CUBLAS_STATUS_SUCCESS");
  EXPECT_STREQ(api.cublasLtGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED");
  EXPECT_GT(std::strlen(api.cublasLtGetStatusString(CUBLAS_STATUS_INVALID_VALUE)), 0u);
  EXPECT_EQ(&cublaslt(), &api);  // loaded once
}

}  // namespace
}  // namespace difftx::cuda
