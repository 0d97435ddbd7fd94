// The dense layers' matrix products on a model's shapes, three ways side by side in one run:
// OpenBLAS cblas_sgemm (float32), oneDNN float32 and oneDNN bf16 (kernels/cpu/gemm.h; bf16 weights as
// kept for inference, float32 activations rounded per call, as the dense layers run it). Each
// product in the three forms training uses: forward y = x·w^T, backward dx = dy·w and dw = dy^T·x.
// The paths take turns on each shape; the median of --repeats runs is reported, in GFLOP/s.
//
// Usage: gemm_bench MODEL_DIR [--tokens 512,2048] [--repeats 5]
// Prints a Markdown table (bench/RESULTS.md, "GEMM paths").
#include <cblas.h>
#include <omp.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/backend.h"
#include "kernels/cpu/gemm.h"
#include "model/model_dir.h"

using namespace difftx;

namespace {

struct Layer {
  std::string name;
  int64_t n, k;  // weight [n, k]
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: gemm_bench MODEL_DIR [--tokens 512,2048] [--repeats 5]\n");
    return 2;
  }
  std::vector<int64_t> tokens = {512, 2048};
  int repeats = 5;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--repeats") repeats = std::max(1, std::stoi(value));
    else if (flag == "--tokens") {
      tokens.clear();
      for (size_t p = 0; p < value.size();) {
        const size_t q = value.find(',', p);
        tokens.push_back(std::stoll(value.substr(p, q - p)));
        p = q == std::string::npos ? value.size() : q + 1;
      }
    } else {
      fmt::print(stderr, "unknown flag {}\n", flag);
      return 2;
    }
  }
  try {
    const ModelConfig c = ModelDir(argv[1]).config();
    const std::vector<Layer> layers = {{"q_proj", c.q_proj_rows(), c.hidden_size},
                                       {"k_proj/v_proj", c.kv_dim(), c.hidden_size},
                                       {"o_proj", c.hidden_size, c.q_dim()},
                                       {"gate/up_proj", c.intermediate_size, c.hidden_size},
                                       {"down_proj", c.hidden_size, c.intermediate_size},
                                       {"lm_head (128-row chunks)", c.vocab_size, c.hidden_size}};
    const bool bf16 = cpu_has_native_bf16();
    fmt::print("threads {}; oneDNN f32 {}, bf16 {}\n\n", omp_get_max_threads(),
               gemm_implementation(512, 576, 576, GemmPrecision::f32),
               bf16 ? gemm_implementation(512, 576, 576, GemmPrecision::bf16) : "not native here");
    {  // the process warms up first (thread team started, oneDNN's kernels generated, clocks settled)
      const auto a = random_values(1024 * 1024, 4);
      std::vector<float> c(1024 * 1024);
      for (int i = 0; i < 20; ++i) {
        gemm(GemmMatrix{a.data(), nullptr, 1024, false}, GemmMatrix{a.data(), nullptr, 1024, true}, 1024, 1024, 1024,
             c.data(), 1024, false, GemmPrecision::f32);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1024, 1024, 1024, 1.0f, a.data(), 1024, a.data(), 1024,
                    0.0f, c.data(), 1024);
      }
    }
    fmt::print("| product | m x n x k | OpenBLAS f32 | oneDNN f32 | oneDNN bf16 | f32 ratio | bf16 ratio |\n");
    fmt::print("| --- | --- | --- | --- | --- | --- | --- |\n");
    for (const Layer& layer : layers)
      for (int64_t T : tokens) {
        const int64_t m = layer.name.rfind("lm_head", 0) == 0 ? 128 : T, n = layer.n, k = layer.k;
        const auto x = random_values(m * k, 1), w = random_values(n * k, 2), dy = random_values(m * n, 3);
        std::vector<uint16_t> w16;
        round_to_bf16(w.data(), n, k, k, w16);
        std::vector<float> y(m * n), dx(m * k), dw(n * k);
        // form: 0 forward, 1 dx, 2 dw; path: 0 OpenBLAS, 1 oneDNN f32, 2 oneDNN bf16
        const auto run = [&](int form, int path) {
          const GemmPrecision p = path == 2 ? GemmPrecision::bf16 : GemmPrecision::f32;
          if (form == 0) {
            if (path == 0)
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data(), k, 0.0f,
                          y.data(), n);
            else
              gemm(GemmMatrix{x.data(), nullptr, k, false},
                   path == 2 ? GemmMatrix{nullptr, w16.data(), k, true} : GemmMatrix{w.data(), nullptr, k, true}, m, n,
                   k, y.data(), n, false, p);
          } else if (form == 1) {
            if (path == 0)
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0f, dy.data(), n, w.data(), k, 1.0f,
                          dx.data(), k);
            else
              gemm(GemmMatrix{dy.data(), nullptr, n, false}, GemmMatrix{w.data(), nullptr, k, false}, m, k, n,
                   dx.data(), k, true, p);
          } else {
            if (path == 0)
              cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, dy.data(), n, x.data(), k, 1.0f,
                          dw.data(), k);
            else
              gemm(GemmMatrix{dy.data(), nullptr, n, true}, GemmMatrix{x.data(), nullptr, k, false}, n, k, m,
                   dw.data(), k, true, p);
          }
        };
        const char* forms[] = {"x·w^T", "dy·w", "dy^T·x"};
        for (int form = 0; form < 3; ++form) {
          std::vector<double> t[3];
          const int paths = bf16 ? 3 : 2;
          for (int warm = 0; warm < 3; ++warm)  // warm-up: primitives made, kernels generated, pages touched
            for (int path = 0; path < paths; ++path) run(form, path);
          for (int r = 0; r < repeats; ++r)
            for (int path = 0; path < paths; ++path) t[path].push_back(seconds([&] { run(form, path); }));
          const double flop = 2.0 * m * n * k;
          const double g0 = flop / median(t[0]) / 1e9, g1 = flop / median(t[1]) / 1e9;
          const double g2 = bf16 ? flop / median(t[2]) / 1e9 : 0.0;
          fmt::print("| {} {} | {} x {} x {} | {:.0f} | {:.0f} | {} | {:.2f}x | {} |\n", layer.name, forms[form],
                     form == 1 ? m : (form == 2 ? n : m), form == 1 ? k : (form == 2 ? k : n),
                     form == 1 ? n : (form == 2 ? m : k), g0, g1, bf16 ? fmt::format("{:.0f}", g2) : "-", g1 / g0,
                     bf16 ? fmt::format("{:.2f}x", g2 / g0) : "-");
        }
        if (layer.name.rfind("lm_head", 0) == 0) break;  // chunks: one row count
      }
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  return 0;
}
