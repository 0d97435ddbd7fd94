#include "kernels/cuda/cublaslt_gemm.h"

#include "kernels/cuda/cublaslt_library.h"
#include "kernels/cuda/cuda_check.h"

namespace difftx::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLASLt's suggestion for Hopper

// The largest power of two (<= 256) the address is a multiple of: cuBLASLt's algorithms state the
// alignment they need, and its heuristic assumes 256 unless told.
int alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int bytes = 256;
  while (bytes > 1 && a % bytes != 0) bytes /= 2;
  return bytes;
}

}  // namespace

LtGemm::LtGemm() {
  DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtCreate(&handle_));
  DIFFTX_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
  workspace_bytes_ = kWorkspaceBytes;
}

LtGemm::~LtGemm() {
  for (auto& [key, p] : plans_) {
    cublaslt().cublasLtMatrixLayoutDestroy(p.c);
    cublaslt().cublasLtMatrixLayoutDestroy(p.b);
    cublaslt().cublasLtMatrixLayoutDestroy(p.a);
    cublaslt().cublasLtMatmulDescDestroy(p.op);
  }
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublaslt().cublasLtDestroy(handle_);
}

// In cuBLAS's column-major terms the row-major y[m, n] is Y (n x m, ld y_stride), w[n, k] is W
// (k x n, ld k) and x[m, k] is X (k x m, ld x_stride): Y = W^T X, so A = W transposed, B = X.
LtGemm::Plan& LtGemm::plan(const Key& key, const void* bias) {
  auto found = plans_.find(key);
  if (found != plans_.end()) return found->second;
  const auto [bf16, m, n, k, x_stride, y_stride, has_bias, align_a, align_b, align_c, align_bias] = key;
  const cudaDataType_t in = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  Plan p;
  DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
  DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
  if (has_bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = CUDA_R_32F;
    DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    DIFFTX_CUBLAS_CHECK(
        cublaslt().cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatrixLayoutCreate(&p.a, in, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k));
  DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatrixLayoutCreate(&p.b, in, static_cast<uint64_t>(k), static_cast<uint64_t>(m), x_stride));
  DIFFTX_CUBLAS_CHECK(
      cublaslt().cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, static_cast<uint64_t>(n), static_cast<uint64_t>(m), y_stride));
  cublasLtMatmulPreference_t pref = nullptr;
  DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_bytes_;
  const uint32_t aa = align_a, ab = align_b, ac = align_c;
  cublaslt().cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublaslt().cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof(aa));
  cublaslt().cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof(ab));
  cublaslt().cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac));
  cublaslt().cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof(ac));
  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  const cublasStatus_t status =
      cublaslt().cublasLtMatmulAlgoGetHeuristic(handle_, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &count);
  cublaslt().cublasLtMatmulPreferenceDestroy(pref);
  if (status != CUBLAS_STATUS_SUCCESS || count == 0) {
    cublaslt().cublasLtMatrixLayoutDestroy(p.c);
    cublaslt().cublasLtMatrixLayoutDestroy(p.b);
    cublaslt().cublasLtMatrixLayoutDestroy(p.a);
    cublaslt().cublasLtMatmulDescDestroy(p.op);
    fail<DeviceError>("cuBLASLt has no algorithm for a {} product of [{}, {}] x [{}, {}]^T (alignments {}, {}, {}): {}",
                      bf16 ? "bf16" : "f32", m, k, n, k, align_b, align_a, align_c, cublaslt().cublasLtGetStatusString(status));
  }
  p.algo = result.algo;
  return plans_.emplace(key, p).first->second;
}

void LtGemm::run(cudaStream_t stream, bool bf16, const void* x, int64_t x_stride, int64_t m, int64_t k, const void* w,
                 int64_t n, const float* bias, float* y, int64_t y_stride, bool accumulate) {
  if (m == 0 || n == 0) return;
  const Key key{bf16, m, n, k, x_stride, y_stride, bias != nullptr, alignment(w), alignment(x), alignment(y),
                bias != nullptr ? alignment(bias) : 256};
  Plan& p = plan(key, bias);
  if (bias != nullptr)
    DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  DIFFTX_CUBLAS_CHECK(cublaslt().cublasLtMatmul(handle_, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo,
                                     workspace_, workspace_bytes_, stream));
}

}  // namespace difftx::cuda
