// Attention kernels (Google Benchmark): difftx's fused differential attention, forward and
// forward+backward, in both llama-differential layouts, and standard attention, at T = 256, 1024,
// 4096, head_dim 64, batch 1, causal. Each benchmark reports GFLOP/s (counted as 2 FLOPs per
// multiply-add of the score and value products: 4 T^2/2 d per map forward, 2.5x that for the
// backward's five products; see bench/NOTES.md) and its peak extra memory.
//
// Shapes (the SmolLM2-135M attention, 9 heads / 3 kv heads of 64):
//   standard   9 query heads, 3 kv heads
//   double     9 diff-heads: 18 q heads (q1 | q2), 6 k heads (k1 | k2), 3 v heads, width 64
//   split      split mode needs even head counts, so 10 heads / 2 kv heads: 5 diff-heads of width 128
// The differential forward includes the subln RMSNorm (learned weight); forward+backward is the
// forward with statistics plus attention_maps_backward over both maps of every diff-head (the
// norm's own backward, an O(T w) elementwise pass, is left out here and in the PyTorch rows).
//
// Peak extra memory: `attention_bench --peak-memory KIND T` runs one forward (KIND standard,
// double, split) or forward+backward (KIND ending "-bwd"), with the bf16 tiles when KIND ends
// "-bf16" (after any "-bwd"), in a fresh process and prints, as JSON,
// the growth of the process's peak RSS (VmHWM) over its RSS with the inputs and outputs
// allocated and touched: what the kernel itself needed. scripts/bench.sh calls it per case.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_backward.h"
#include "kernels/cpu/diff_attention.h"
#include "kernels/cpu/diff_attention_backward.h"
#include "model/diff_layout.h"

using namespace difftx;

namespace {

constexpr int64_t kHeadDim = 64;

enum class Kind { standard, diff_double, diff_split };

struct Case {
  Kind kind;
  int64_t T;
  int64_t q_heads, k_heads, v_heads;  // heads stored in q rows and the k / v caches
  DiffHeadMap map;                    // differential kinds
  int64_t out_width() const { return kind == Kind::standard ? q_heads * kHeadDim : map.n_diff_heads() * map.value_heads * kHeadDim; }
  int64_t maps() const { return kind == Kind::standard ? q_heads : 2 * map.n_diff_heads(); }
};

Case make_case(Kind kind, int64_t T) {
  Case c{kind, T, 9, 3, 3, {}};
  if (kind == Kind::standard) return c;
  ModelConfig mc;
  mc.layout = AttentionLayout::llama_differential;
  mc.head_dim = kHeadDim;
  mc.split_heads = kind == Kind::diff_split;
  mc.num_attention_heads = mc.split_heads ? 10 : 9;
  mc.num_key_value_heads = mc.split_heads ? 2 : 3;
  c.map = diff_head_map(mc);
  c.q_heads = mc.q_proj_rows() / kHeadDim;
  c.k_heads = mc.k_proj_rows() / kHeadDim;
  c.v_heads = mc.num_key_value_heads;
  return c;
}

// Score and value products of the forward, 2 FLOPs per multiply-add, causal (T(T+1)/2 pairs).
double forward_flops(const Case& c) {
  const double pairs = c.T * (c.T + 1) / 2.0;
  const double w = c.kind == Kind::standard ? kHeadDim : c.map.value_heads * kHeadDim;
  return c.maps() * pairs * 2.0 * (kHeadDim + w);
}
// The backward recomputes the scores and forms dV, dP, dQ, dK: five products of the forward's size.
double backward_flops(const Case& c) { return 2.5 * forward_flops(c); }

struct Buffers {
  std::vector<float> q, k, v, out, norm_weight, m, l, a, dq, dk, dv, d_out;
  explicit Buffers(const Case& c, bool backward) {
    std::mt19937 rng(7);
    std::normal_distribution<float> n(0.0f, 1.0f);
    auto fill = [&](std::vector<float>& x, size_t size) {
      x.resize(size);
      for (float& f : x) f = n(rng);
    };
    const size_t T = static_cast<size_t>(c.T);
    fill(q, T * c.q_heads * kHeadDim);
    fill(k, T * c.k_heads * kHeadDim);
    fill(v, T * c.v_heads * kHeadDim);
    out.assign(T * c.out_width(), 0.0f);
    norm_weight.assign(c.map.value_heads * kHeadDim, 1.0f);
    if (!backward) return;
    m.assign(T * c.maps(), 0.0f);
    l.assign(m.size(), 0.0f);
    a.assign(2 * out.size(), 0.0f);
    dq.assign(q.size(), 0.0f);
    dk.assign(k.size(), 0.0f);
    dv.assign(v.size(), 0.0f);
    fill(d_out, T * c.maps() * (c.kind == Kind::standard ? kHeadDim : c.map.value_heads * kHeadDim));
  }
};

// The differential layers' parameters: lambda 0.8, an RMSNorm with weight (the seed's layout).
DiffAttentionParams bench_params(const Buffers& b, float scale) {
  DiffAttentionParams p;
  p.scale = scale;
  p.lambda = 0.8f;
  p.norm = true;
  p.norm_weight = b.norm_weight.data();
  return p;
}

void run_forward(const Case& c, Buffers& b, bool with_stats, TileProducts products = TileProducts::f32) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  if (c.kind == Kind::standard) {
    AttentionShape s{1, c.T, c.T, c.T, c.q_heads, c.k_heads, c.k_heads, kHeadDim, 0};
    attention_forward(s, b.q.data(), c.q_heads * kHeadDim, b.k.data(), b.v.data(), nullptr, scale, b.out.data(),
                      c.out_width(), with_stats ? b.m.data() : nullptr, with_stats ? b.l.data() : nullptr, products);
    return;
  }
  AttentionShape s{1, c.T, c.T, c.T, c.q_heads, c.k_heads, c.v_heads, kHeadDim, 0};
  const DiffAttentionParams p = bench_params(b, scale);
  DiffAttentionStats st{b.m.data(), b.l.data(), b.a.data()};
  diff_attention_forward(s, c.map, p, b.q.data(), c.q_heads * kHeadDim, b.k.data(), b.v.data(), nullptr, b.out.data(),
                         c.out_width(), with_stats ? &st : nullptr, products);
}

// The backward: standard heads (attention_maps_backward), or the differential kernel
// (diff_attention_backward: the difference, the norm and both maps of each diff-head).
void run_backward(const Case& c, Buffers& b, TileProducts products = TileProducts::f32) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  const AttentionGrads grads{b.dq.data(), c.q_heads * kHeadDim, b.dk.data(), b.dv.data(), nullptr};
  if (c.kind == Kind::standard) {
    AttentionShape s{1, c.T, c.T, c.T, c.q_heads, c.k_heads, c.k_heads, kHeadDim, 0};
    attention_backward(s, b.q.data(), c.q_heads * kHeadDim, b.k.data(), b.v.data(), nullptr, scale, b.m.data(),
                       b.l.data(), b.out.data(), b.d_out.data(), grads, products);
    return;
  }
  AttentionShape s{1, c.T, c.T, c.T, c.q_heads, c.k_heads, c.v_heads, kHeadDim, 0};
  const DiffAttentionParams p = bench_params(b, scale);
  benchmark::DoNotOptimize(diff_attention_backward(s, c.map, p, b.q.data(), c.q_heads * kHeadDim, b.k.data(),
                                                   b.v.data(), nullptr, {b.m.data(), b.l.data(), b.a.data()},
                                                   b.d_out.data(), grads, products));
}

// products bf16: the tiles of the bf16 compute mode (attention_tiles_bf16.h; float32 on builds
// without AVX512_BF16).
void BM_Attention(benchmark::State& state, Kind kind, bool backward, TileProducts products = TileProducts::f32) {
  const Case c = make_case(kind, state.range(0));
  Buffers b(c, backward);
  for (auto _ : state) {
    run_forward(c, b, backward, products);
    if (backward) run_backward(c, b, products);
    benchmark::DoNotOptimize(b.out.data());
    benchmark::ClobberMemory();
  }
  const double flops = forward_flops(c) + (backward ? backward_flops(c) : 0.0);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Resident-set sizes from /proc/self/status, in bytes.
int64_t status_bytes(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::strlen(key))) * 1024;
  return -1;
}

int peak_memory(const std::string& kind_name, int64_t T) {
  std::string base = kind_name;
  const auto strip = [&base](const std::string& suffix) {
    const bool has = base.size() > suffix.size() && base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (has) base.resize(base.size() - suffix.size());
    return has;
  };
  const TileProducts products = strip("-bf16") ? TileProducts::bf16 : TileProducts::f32;
  const bool backward = strip("-bwd");
  Kind kind;
  if (base == "standard") kind = Kind::standard;
  else if (base == "double") kind = Kind::diff_double;
  else if (base == "split") kind = Kind::diff_split;
  else {
    fmt::print(stderr, "attention_bench: --peak-memory KIND must be standard, double or split (optionally -bwd, then optionally -bf16), got {}\n",
               kind_name);
    return 2;
  }
  const Case c = make_case(kind, T);
  Buffers b(c, backward);
  const int64_t before = status_bytes("VmRSS:");
  run_forward(c, b, backward, products);
  if (backward) run_backward(c, b, products);
  const int64_t peak = status_bytes("VmHWM:");
  fmt::print("{{\"kind\": \"{}\", \"T\": {}, \"rss_before_bytes\": {}, \"extra_bytes\": {}}}\n", kind_name, T,
             before, std::max<int64_t>(0, peak - before));
  return 0;
}

}  // namespace

BENCHMARK_CAPTURE(BM_Attention, standard_fwd, Kind::standard, false)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Attention, double_fwd, Kind::diff_double, false)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Attention, split_fwd, Kind::diff_split, false)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Attention, standard_fwdbwd, Kind::standard, true)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Attention, double_fwdbwd, Kind::diff_double, true)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Attention, split_fwdbwd, Kind::diff_split, true)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Attention, standard_fwd_bf16, Kind::standard, false, TileProducts::bf16)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Attention, double_fwd_bf16, Kind::diff_double, false, TileProducts::bf16)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Attention, double_fwdbwd_bf16, Kind::diff_double, true, TileProducts::bf16)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--peak-memory") return peak_memory(argv[2], std::stoll(argv[3]));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
