// cuBLASLt loaded on first use (dlopen), not at program start: linking it made every difftx
// process of a CUDA build map and relocate the 540 MB library (~150 MB more resident memory and
// ~60 ms more start-up on CPU-only runs; bench/NOTES.md change 26). The CUDA backend calls cuBLASLt
// through this table, whose members have the names and types of the functions in <cublasLt.h>.
#pragma once

#include <cublasLt.h>

namespace difftx::cuda {

// Every cuBLASLt function difftx calls (one list: the table's members and what is looked up).
#define DIFFTX_CUBLASLT_FUNCTIONS(X)                                                                \
  X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtGetStatusName) X(cublasLtGetStatusString)         \
  X(cublasLtMatmul) X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmulDescCreate)                  \
  X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute) X(cublasLtMatmulPreferenceCreate) \
  X(cublasLtMatmulPreferenceDestroy) X(cublasLtMatmulPreferenceSetAttribute)                      \
  X(cublasLtMatrixLayoutCreate) X(cublasLtMatrixLayoutDestroy)

struct CublasLtApi {
#define DIFFTX_CUBLASLT_MEMBER(name) decltype(&::name) name = nullptr;
  DIFFTX_CUBLASLT_FUNCTIONS(DIFFTX_CUBLASLT_MEMBER)
#undef DIFFTX_CUBLASLT_MEMBER
};

// The table, loading the library on the first call (thread-safe; later calls return it). Looks for
// libcublasLt.so.<major of the headers difftx was built with> the way the dynamic linker would
// (LD_LIBRARY_PATH, the system's cache), then in the toolkit difftx was built against. Throws
// DeviceError naming the library and dlerror's reason when it is not found or lacks a function.
const CublasLtApi& cublaslt();

}  // namespace difftx::cuda
