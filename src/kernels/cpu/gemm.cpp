#include "kernels/cpu/gemm.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "common/bf16.h"
#include "common/error.h"

namespace difftx {

namespace {

using dt = dnnl::memory::data_type;

// Everything a matmul primitive depends on.
struct Shape {
  int64_t M, N, K, lda, ldb, ldc;
  bool a_transposed, b_transposed, accumulate, bf16;
  bool operator==(const Shape&) const = default;
};

struct ShapeHash {
  size_t operator()(const Shape& s) const {
    size_t h = 0;
    for (int64_t v : {s.M, s.N, s.K, s.lda, s.ldb, s.ldc})
      h = h * 1000003u ^ static_cast<size_t>(v);
    return h * 16 + (s.a_transposed ? 8 : 0) + (s.b_transposed ? 4 : 0) + (s.accumulate ? 2 : 0) + (s.bf16 ? 1 : 0);
  }
};

struct Product {
  dnnl::matmul primitive;
  dnnl::memory::desc a, b, c, scratchpad;
  std::string implementation;
};

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Row-major [rows, cols] with rows ld apart, or the transpose of what memory holds.
dnnl::memory::desc matrix_desc(int64_t rows, int64_t cols, int64_t ld, bool transposed, dt type) {
  const dnnl::memory::dims strides = transposed ? dnnl::memory::dims{1, ld} : dnnl::memory::dims{ld, 1};
  return dnnl::memory::desc({rows, cols}, type, strides);
}

Product make_product(const Shape& s) {
  const dt in = s.bf16 ? dt::bf16 : dt::f32;
  Product p;
  p.a = matrix_desc(s.M, s.K, s.lda, s.a_transposed, in);
  p.b = matrix_desc(s.K, s.N, s.ldb, s.b_transposed, in);
  p.c = matrix_desc(s.M, s.N, s.ldc, false, dt::f32);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // per-thread scratchpads: calls may run concurrently
  if (s.accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p.a, p.b, p.c), attr, cpu_engine());
  p.scratchpad = pd.scratchpad_desc();
  p.implementation = pd.impl_info_str();
  p.primitive = dnnl::matmul(pd);
  return p;
}

// The primitive for a shape, made on first use and kept. When the cache passes kMaxProducts
// (inference over very many prompt lengths) it starts again empty; a caller still running a product
// holds it through its shared_ptr.
std::shared_ptr<const Product> product_for(const Shape& s) {
  constexpr size_t kMaxProducts = 4096;
  static std::mutex mutex;
  static std::unordered_map<Shape, std::shared_ptr<const Product>, ShapeHash> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(s);
  if (it != cache.end()) return it->second;
  try {
    auto product = std::make_shared<const Product>(make_product(s));
    if (cache.size() >= kMaxProducts) cache.clear();
    return cache.emplace(s, std::move(product)).first->second;
  } catch (const dnnl::error& e) {
    fail<DeviceError>("oneDNN cannot make a {} matrix product of [{}, {}] x [{}, {}]: {}", s.bf16 ? "bf16" : "f32",
                      s.M, s.K, s.K, s.N, e.what());
  }
}

void run(const Product& p, const void* a, const void* b, float* c) {
  thread_local dnnl::stream stream(cpu_engine());
  thread_local std::vector<unsigned char> scratch;
  const size_t bytes = p.scratchpad.get_size();
  if (scratch.size() < bytes) scratch.resize(bytes);
  const dnnl::engine& engine = cpu_engine();
  try {
    p.primitive.execute(stream, {{DNNL_ARG_SRC, dnnl::memory(p.a, engine, const_cast<void*>(a))},
                                 {DNNL_ARG_WEIGHTS, dnnl::memory(p.b, engine, const_cast<void*>(b))},
                                 {DNNL_ARG_DST, dnnl::memory(p.c, engine, c)},
                                 {DNNL_ARG_SCRATCHPAD, dnnl::memory(p.scratchpad, engine, scratch.data())}});
    stream.wait();
  } catch (const dnnl::error& e) {
    fail<DeviceError>("oneDNN matrix product failed: {}", e.what());
  }
}

// The stored extent of an operand: rows x cols as memory holds it.
struct Stored {
  int64_t rows, cols;
};
Stored stored(const GemmMatrix& m, int64_t logical_rows, int64_t logical_cols) {
  return m.transposed ? Stored{logical_cols, logical_rows} : Stored{logical_rows, logical_cols};
}

}  // namespace

void round_to_bf16(const float* src, int64_t rows, int64_t cols, int64_t src_ld, std::vector<uint16_t>& dst) {
  dst.resize(static_cast<size_t>(rows * cols));
  uint16_t* out = dst.data();
#pragma omp parallel for schedule(static) if (rows * cols >= 65536)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) out[r * cols + j] = f32_to_bf16(src[r * src_ld + j]);
}

void gemm(const GemmMatrix& a, const GemmMatrix& b, int64_t M, int64_t N, int64_t K, float* c, int64_t ldc,
          bool accumulate, GemmPrecision precision) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::memset(c + i * ldc, 0, sizeof(float) * N);
    return;
  }
  const bool bf16 = precision == GemmPrecision::bf16;
  Shape s{M, N, K, a.ld, b.ld, ldc, a.transposed, b.transposed, accumulate, bf16};
  const void* pa = a.f32;
  const void* pb = b.f32;
  if (!bf16) {
    if (a.f32 == nullptr || b.f32 == nullptr)
      throw std::invalid_argument("gemm: a float32 product needs float32 operands (widen bf16 ones first)");
  } else {
    thread_local std::vector<uint16_t> a16, b16;
    const auto operand = [](const GemmMatrix& m, Stored st, int64_t& ld, std::vector<uint16_t>& buffer) -> const void* {
      if (m.bf16 != nullptr) return m.bf16;
      round_to_bf16(m.f32, st.rows, st.cols, m.ld, buffer);
      ld = st.cols;
      return buffer.data();
    };
    pa = operand(a, stored(a, M, K), s.lda, a16);
    pb = operand(b, stored(b, K, N), s.ldb, b16);
  }
  run(*product_for(s), pa, pb, c);
}

bool gemm_bf16_available() {
  static const bool available = [] {
    try {
      return gemm_implementation(64, 64, 64, GemmPrecision::bf16).rfind("ref", 0) != 0;
    } catch (const DeviceError&) {
      return false;
    }
  }();
  return available;
}

std::string gemm_implementation(int64_t m, int64_t n, int64_t k, GemmPrecision precision) {
  return product_for(Shape{m, n, k, k, k, n, false, true, false, precision == GemmPrecision::bf16})->implementation;
}

}  // namespace difftx
