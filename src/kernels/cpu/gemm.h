// Matrix products on the CPU through oneDNN's matmul primitive (Debian libdnnl, the library PyTorch
// uses on CPUs; it picks its kernels from the CPU's features at run time: AVX-512 on this machine,
// AVX2 elsewhere). A primitive is made once per shape (dimensions, strides, transposition,
// accumulation, precision) and kept for the process, so each call only binds pointers.
//
// Precision (kernels/backend.h, MathMode):
//   f32:  float32 operands, float32 arithmetic. For a given shape and thread count the result is the
//         same bits on every call (oneDNN splits the work the same way), which the bit-exact resume
//         of training relies on.
//   bf16: bfloat16 operands (float32 ones are rounded to nearest-even first, as PyTorch autocast
//         does), float32 accumulation and float32 output. Needs a CPU oneDNN runs bf16 on natively
//         (AVX512_BF16 or AMX); gemm_bf16_available() says whether it does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace difftx {

enum class GemmPrecision { f32, bf16 };

// One operand of a product as it sits in memory: row-major, rows `ld` elements apart, either
// float32 or bfloat16 (exactly one pointer set). transposed: the memory holds the operand's
// transpose (a Linear weight w[n, k] used as the right operand of x · w^T).
struct GemmMatrix {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  int64_t ld = 0;
  bool transposed = false;
};

// c[M, N] = a[M, K] · b[K, N], or c += that when accumulate; c rows ldc floats apart.
// f32 precision needs float32 operands (std::invalid_argument otherwise); bf16 precision rounds any
// float32 operand into a per-thread buffer first. Throws DeviceError when oneDNN fails.
// M, N or K == 0: c is left as it is (accumulate) or zeroed.
void gemm(const GemmMatrix& a, const GemmMatrix& b, int64_t M, int64_t N, int64_t K, float* c, int64_t ldc,
          bool accumulate, GemmPrecision precision);

// dst = bf16(src) for rows x cols of src (rows src_ld apart), written compactly (cols apart), in
// parallel; dst is resized to rows * cols.
void round_to_bf16(const float* src, int64_t rows, int64_t cols, int64_t src_ld, std::vector<uint16_t>& dst);

// True when oneDNN runs bf16 products natively on this CPU (not on its slow reference code).
// Decided once, by making a small bf16 primitive and reading which implementation oneDNN chose.
bool gemm_bf16_available();

// The implementation oneDNN picks for a float32 (or bf16) product of m x k by k x n, e.g.
// "brg:avx512_core" (benchmarks and diagnostics).
std::string gemm_implementation(int64_t m, int64_t n, int64_t k, GemmPrecision precision);

}  // namespace difftx
