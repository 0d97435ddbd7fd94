// The CPU implementation of the backend interface (kernels/backend.h): host memory, and the
// kernels of this folder (OpenMP threads; oneDNN for the dense layers' products, OpenBLAS inside
// the attention tiles).
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace difftx {

// math bf16: the dense layers' products in bf16 with float32 accumulation (kernels/cpu/gemm.h);
// where oneDNN cannot do them natively, logs one warning and computes in float32.
std::shared_ptr<Backend> make_cpu_backend(MathMode math = MathMode::f32);

}  // namespace difftx
