// The one-row products of decoding (gemv_f32, gemv_bf16 and its portable fallback) and the
// bfloat16 path of linear_forward, against a double-precision product on the widened weights.
#include "kernels/cpu/gemv.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "io/dtype.h"
#include "kernels/cpu/linear.h"

namespace difftx {
namespace {

struct Bf16Matrix {
  std::vector<uint16_t> bits;
  std::vector<float> widened;
};

Bf16Matrix random_bf16(int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Bf16Matrix m;
  for (int64_t i = 0; i < n * k; ++i) {
    m.bits.push_back(f32_to_bf16(dist(rng)));
    m.widened.push_back(bf16_to_f32(m.bits.back()));
  }
  return m;
}

std::vector<float> random_vector(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// y0 + w · x in double; returns the largest error of a row relative to the magnitude of its terms,
// |got - that| / (|y0| + sum |w_j x_j|). Any float32 summation order of k products and y0 stays
// below (k + 2) * 2^-24 of that (the worst-case bound of recursive summation); a missed, repeated
// or misplaced term is far above it.
double error_vs_double(const std::vector<float>& w, int64_t n, int64_t k, const std::vector<float>& x,
                       const std::vector<float>& y0, const std::vector<float>& got) {
  double err = 0;
  for (int64_t r = 0; r < n; ++r) {
    double s = y0[r], magnitude = std::abs(y0[r]);
    for (int64_t j = 0; j < k; ++j) {
      s += double(w[r * k + j]) * x[j];
      magnitude += std::abs(double(w[r * k + j]) * x[j]);
    }
    err = std::max(err, std::abs(got[r] - s) / std::max(magnitude, 1e-30));
  }
  return err;
}

TEST(Gemv, Bf16AndF32MatchADoubleProductForEveryShapeTail) {
  std::mt19937 rng(7);
  for (int64_t n : {1, 3, 4, 5, 17, 64, 301, 1000})
    for (int64_t k : {1, 15, 16, 17, 64, 100, 576, 1000})
      for (bool accumulate : {false, true}) {
        Bf16Matrix w = random_bf16(n, k, rng);
        std::vector<float> x = random_vector(k, rng), y0 = random_vector(n, rng);
        std::vector<float> zeros(static_cast<size_t>(n), 0.0f);
        const std::vector<float>& base = accumulate ? y0 : zeros;
        for (int kind = 0; kind < 3; ++kind) {
          std::vector<float> y = y0;
          if (kind == 0) gemv_f32(w.widened.data(), n, k, x.data(), y.data(), accumulate);
          if (kind == 1) gemv_bf16(w.bits.data(), n, k, x.data(), y.data(), accumulate);
          if (kind == 2) gemv_bf16_portable(w.bits.data(), n, k, x.data(), y.data(), accumulate);
          EXPECT_LE(error_vs_double(w.widened, n, k, x, base, y), static_cast<double>(k + 2) * 0x1p-24)
              << "kind " << kind << " n " << n << " k " << k << " accumulate " << accumulate;
        }
      }
}

TEST(Gemv, WideningIsExactAndKeepsSpecialValues) {
  const std::vector<uint16_t> bits = {0x0000, 0x8000, 0x3f80, 0xbf80, 0x7f80, 0xff80, 0x0001, 0x7f7f};
  std::vector<float> out(bits.size());
  bf16_rows_to_f32(bits.data(), 2, 4, out.data());
  for (size_t i = 0; i < bits.size(); ++i) EXPECT_EQ(std::bit_cast<uint32_t>(out[i]), uint32_t(bits[i]) << 16) << i;
}

// linear_forward with bf16 weights equals linear_forward with the widened float32 weights: one
// row (gemv) and several rows (widened blocks + sgemm, here three blocks of 16 rows when k = 2^17),
// with bias, accumulation and strides.
TEST(Gemv, LinearForwardBf16EqualsF32OnTheWidenedWeights) {
  std::mt19937 rng(11);
  struct Shape { int64_t m, k, n; };
  for (Shape s : {Shape{1, 96, 40}, Shape{5, 96, 40}, Shape{3, int64_t{1} << 17, 40}, Shape{1, int64_t{1} << 17, 7}})
    for (bool bias_on : {false, true})
      for (bool accumulate : {false, true}) {
        Bf16Matrix w = random_bf16(s.n, s.k, rng);
        const int64_t x_stride = s.k + 3, y_stride = s.n + 5;
        std::vector<float> x = random_vector(s.m * x_stride, rng), bias = random_vector(s.n, rng);
        std::vector<float> y_ref = random_vector(s.m * y_stride, rng), y = y_ref;
        const float* b = bias_on ? bias.data() : nullptr;
        linear_forward(x.data(), s.m, s.k, w.widened.data(), b, s.n, y_ref.data(), accumulate, x_stride, y_stride);
        linear_forward(x.data(), s.m, s.k, LinearWeight{nullptr, w.bits.data()}, b, s.n, y.data(), accumulate, x_stride,
                       y_stride);
        double err = 0, scale = 1;
        for (size_t i = 0; i < y.size(); ++i) {
          err = std::max(err, double(std::abs(y[i] - y_ref[i])));
          scale = std::max(scale, double(std::abs(y_ref[i])));
        }
        EXPECT_LE(err / scale, 1e-5) << "m " << s.m << " k " << s.k << " n " << s.n << " bias " << bias_on
                                     << " accumulate " << accumulate;
      }
}

// Each row is summed by one thread in a fixed order, so the products are bit-identical whatever
// the thread count (the blocks depend on it: 1000 rows are 7 x 128 + 104 with 1 thread, 6 x 128
// then 116, 60, 28, 16, 8, 4 with 2; 193 rows are 128 + 65 with 1 thread, 96, 48, 24, 12, 8, 5 with 2
// and end in 8, 8, 8, 1 with 3; runs of rows read in step, a block's tail one by one).
TEST(Gemv, ResultsDoNotDependOnTheThreadCount) {
  std::mt19937 rng(11);
  const int threads = omp_get_max_threads();
  for (int64_t n : {1000, 576, 193}) {
    const int64_t k = 576;
    Bf16Matrix w = random_bf16(n, k, rng);
    std::vector<float> x = random_vector(k, rng);
    std::vector<float> one_f32(n), one_bf16(n);
    omp_set_num_threads(1);
    gemv_f32(w.widened.data(), n, k, x.data(), one_f32.data(), false);
    gemv_bf16(w.bits.data(), n, k, x.data(), one_bf16.data(), false);
    for (int team : {2, 3}) {
      std::vector<float> many_f32(n), many_bf16(n);
      omp_set_num_threads(team);
      gemv_f32(w.widened.data(), n, k, x.data(), many_f32.data(), false);
      gemv_bf16(w.bits.data(), n, k, x.data(), many_bf16.data(), false);
      for (int64_t r = 0; r < n; ++r) {
        EXPECT_EQ(std::bit_cast<uint32_t>(one_f32[r]), std::bit_cast<uint32_t>(many_f32[r]))
            << "n " << n << " threads " << team << " row " << r;
        EXPECT_EQ(std::bit_cast<uint32_t>(one_bf16[r]), std::bit_cast<uint32_t>(many_bf16[r]))
            << "n " << n << " threads " << team << " row " << r;
      }
    }
    omp_set_num_threads(threads);
  }
}

// gemv_many of more jobs than one parallel region takes (8), of every size (an empty one too),
// mixed storage and accumulation: bit-identical to one gemv call per job.
TEST(Gemv, ManyJobsEqualOneCallEach) {
  std::mt19937 rng(3);
  const int64_t k = 96;
  const std::vector<int64_t> sizes = {576, 192, 0, 7, 1536, 130, 4, 1, 300, 64, 129};
  std::vector<Bf16Matrix> ws;
  std::vector<std::vector<float>> ys, refs;
  std::vector<GemvJob> jobs;
  const std::vector<float> x = random_vector(k, rng);
  for (size_t i = 0; i < sizes.size(); ++i) {
    ws.push_back(random_bf16(sizes[i], k, rng));
    ys.push_back(random_vector(sizes[i], rng));
    refs.push_back(ys.back());
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    const bool bf16 = i % 2 == 1, accumulate = i % 3 == 0;
    jobs.push_back(GemvJob{bf16 ? nullptr : ws[i].widened.data(), bf16 ? ws[i].bits.data() : nullptr, sizes[i], k,
                           x.data(), ys[i].data(), accumulate});
    if (bf16) gemv_bf16(ws[i].bits.data(), sizes[i], k, x.data(), refs[i].data(), accumulate);
    else gemv_f32(ws[i].widened.data(), sizes[i], k, x.data(), refs[i].data(), accumulate);
  }
  gemv_many(jobs.data(), static_cast<int>(jobs.size()));
  for (size_t i = 0; i < sizes.size(); ++i)
    for (int64_t r = 0; r < sizes[i]; ++r)
      EXPECT_EQ(std::bit_cast<uint32_t>(ys[i][r]), std::bit_cast<uint32_t>(refs[i][r])) << "job " << i << " row " << r;
}

// One region of jobs of different widths (the claimed blocks cross from a 1536-column job into
// 576-column ones, and shrink by the work left in columns): bit-identical with 1, 2 and 3 threads,
// and to one call per job on one thread (gemv_bf16 for the bf16 job: the portable loop widens
// and sums bf16 rows in another order than float32 ones).
TEST(Gemv, RegionOfMixedWidthsDoesNotDependOnTheThreadCount) {
  std::mt19937 rng(17);
  const int threads = omp_get_max_threads();
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{576, 1536}, {333, 576}, {0, 576}, {1536, 576}, {9, 100}};
  std::vector<Bf16Matrix> ws;
  std::vector<std::vector<float>> xs, refs;
  for (auto [n, k] : shapes) {
    ws.push_back(random_bf16(n, k, rng));
    xs.push_back(random_vector(k, rng));
    refs.emplace_back(static_cast<size_t>(n));
  }
  omp_set_num_threads(1);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto [n, k] = shapes[i];
    if (i == 1) gemv_bf16(ws[i].bits.data(), n, k, xs[i].data(), refs[i].data(), false);
    else gemv_f32(ws[i].widened.data(), n, k, xs[i].data(), refs[i].data(), false);
  }
  for (int team : {1, 2, 3}) {
    omp_set_num_threads(team);
    std::vector<std::vector<float>> ys;
    std::vector<GemvJob> jobs;
    for (size_t i = 0; i < shapes.size(); ++i) {
      ys.emplace_back(static_cast<size_t>(shapes[i].first), -1.0f);
      jobs.push_back(GemvJob{i == 1 ? nullptr : ws[i].widened.data(), i == 1 ? ws[i].bits.data() : nullptr,
                             shapes[i].first, shapes[i].second, xs[i].data(), ys[i].data(), false});
    }
    gemv_many(jobs.data(), static_cast<int>(jobs.size()));
    for (size_t i = 0; i < shapes.size(); ++i)
      for (int64_t r = 0; r < shapes[i].first; ++r)
        EXPECT_EQ(std::bit_cast<uint32_t>(ys[i][r]), std::bit_cast<uint32_t>(refs[i][r]))
            << "threads " << team << " job " << i << " row " << r;
  }
  omp_set_num_threads(threads);
}

// Several outputs of one input (q/k/v, gate/up): one row goes through gemv_many (all blocks in one
// parallel region), several rows through one linear_forward each; both equal separate calls.
TEST(Gemv, SharedInputEqualsSeparateProducts) {
  std::mt19937 rng(5);
  const int64_t k = 200;
  for (int64_t m : {1, 3}) {
    Bf16Matrix wq = random_bf16(37, k, rng), wk = random_bf16(8, k, rng), wv = random_bf16(5, k, rng);
    std::vector<float> x = random_vector(m * k, rng), bias = random_vector(37, rng);
    std::vector<float> q(m * 37), kk(m * 8), v(m * 5), q_ref(q.size()), k_ref(kk.size()), v_ref(v.size());
    const LinearOut outs[] = {{LinearWeight{nullptr, wq.bits.data()}, bias.data(), 37, q.data()},
                              {LinearWeight{wk.widened.data(), nullptr}, nullptr, 8, kk.data()},
                              {LinearWeight{nullptr, wv.bits.data()}, bias.data(), 5, v.data()}};
    linear_forward_shared_input(x.data(), m, k, outs);
    linear_forward(x.data(), m, k, wq.widened.data(), bias.data(), 37, q_ref.data());
    linear_forward(x.data(), m, k, wk.widened.data(), nullptr, 8, k_ref.data());
    linear_forward(x.data(), m, k, wv.widened.data(), bias.data(), 5, v_ref.data());
    for (size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(q[i], q_ref[i], 1e-4) << "m " << m << " q " << i;
    for (size_t i = 0; i < kk.size(); ++i) EXPECT_NEAR(kk[i], k_ref[i], 1e-4) << "m " << m << " k " << i;
    for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], v_ref[i], 1e-4) << "m " << m << " v " << i;
  }
}

}  // namespace
}  // namespace difftx
