// The CPU implementation of the backend interface (kernels/backend.h): host memory, and the
// kernels of this folder (OpenMP threads, OpenBLAS for the products).
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace difftx {

std::shared_ptr<Backend> make_cpu_backend();

}  // namespace difftx
