// Helpers for the backend-ops tests (llama.cpp's test-backend-ops pattern): the CPU backend is the
// oracle, every other backend runs the same operation on the same random inputs and must agree
// within the tolerance of its math mode. A backend that is not there (difftx built without CUDA,
// no GPU visible) makes its tests SKIPPED, never passed.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/backend.h"

namespace difftx::test {

// Declares `var`, the CUDA backend in `mode`, or skips the test saying why there is none.
#define DIFFTX_REQUIRE_CUDA(var, mode)                                     \
  std::shared_ptr<::difftx::Backend> var;                                  \
  try {                                                                    \
    var = ::difftx::make_backend("cuda", mode);                            \
  } catch (const ::difftx::DeviceError& e) {                               \
    GTEST_SKIP() << "no CUDA backend here: " << e.what();                  \
  }

// The tolerance of a math mode, relative to the largest magnitude of the reference: float32
// arithmetic in another order (f32), or bfloat16 operands with float32 accumulation (bf16).
inline double tolerance(MathMode mode) { return mode == MathMode::f32 ? 1e-5 : 3e-2; }

inline std::vector<float> random_floats(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// bfloat16 bits of each value, rounded to nearest even (the weights a bf16 model keeps).
std::vector<uint16_t> to_bf16(const std::vector<float>& v);

// A host array copied into a buffer of `backend`, and read back.
template <class T>
Buffer on(Backend& backend, const std::vector<T>& host) {
  Buffer b = backend.alloc(std::max<size_t>(host.size(), 1) * sizeof(T));
  backend.upload(b.as<void>(), host.data(), host.size() * sizeof(T));
  return b;
}
template <class T>
std::vector<T> back(Backend& backend, const Buffer& b, size_t count) {
  std::vector<T> host(count);
  backend.download(host.data(), b.as<const T>(), count * sizeof(T));
  return host;
}

// Fills a buffer with NaN so that an element the operation should write and did not shows.
void poison(Backend& backend, Buffer& b);

// max |a - b| / max |ref| (0 when both are all zero); NaN when any value is not finite.
double relative_error(const std::vector<float>& a, const std::vector<float>& ref);

// EXPECT that `got` matches `ref` within tol relative to max |ref|, naming what was compared.
void expect_close(const std::vector<float>& got, const std::vector<float>& ref, double tol, const std::string& what);

}  // namespace difftx::test
