// The CUDA implementation of the backend interface (kernels/backend.h): weights, activations and
// KV caches in device memory; products through cuBLASLt (float32, or bfloat16 operands with
// float32 accumulation), and difftx's own kernels for everything else (kernels/cuda/kernels.h).
// One CUDA stream per backend; operations are queued on it in call order.
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace difftx {

// Throws DeviceError when no CUDA device with that index is visible (naming how many are), or the
// driver cannot be initialised (naming the CUDA error).
std::shared_ptr<Backend> make_cuda_backend(int device, MathMode math);

}  // namespace difftx
