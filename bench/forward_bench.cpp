// Prefill and decode throughput of a model directory, beside the machine's own limits measured in
// the same run (GFLOP/s of a large square product, all threads: OpenBLAS sgemm, and oneDNN in f32
// and bf16 as difftx's dense layers run it; memory bandwidth of a STREAM-style triad and of a
// read-only stream). Usage: forward_bench MODEL_DIR [--seq-len 512] [--decode 128] [--repeats 3] [--no-limits]
// [--weight-dtype f32|bf16] [--compute-dtype f32|bf16] [--json]. --compute-dtype bf16 runs the
// products in bf16 (MathMode::bf16) with the matrices kept in bf16, as `difftx forward` does. --no-limits skips the sgemm and bandwidth measurements; --weight-dtype bf16
// keeps the matrices in bf16 (Model::keep_matrices_in_bf16) and reports the largest logit difference
// from float32 weights on the first 64 prompt tokens; --json ends with one line of JSON holding every
// number printed (scripts/bench.sh reads it).
#include <omp.h>

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/backend.h"
#include "kernels/cpu/gemm.h"
#include "model/model_dir.h"
#include "model/kv_cache.h"

using namespace difftx;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The same square product through kernels/cpu/gemm.h (oneDNN), as the dense layers run it:
// float32, or bf16 operands already in bf16 (weights kept in bf16; activations are rounded per call).
double onednn_gflops(int n, int repeats, GemmPrecision precision) {
  std::vector<float> a(size_t(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size());
  std::vector<uint16_t> a16, b16;
  round_to_bf16(a.data(), n, n, n, a16);
  round_to_bf16(b.data(), n, n, n, b16);
  const bool bf16 = precision == GemmPrecision::bf16;
  const GemmMatrix ma = bf16 ? GemmMatrix{nullptr, a16.data(), n, false} : GemmMatrix{a.data(), nullptr, n, false};
  const GemmMatrix mb = bf16 ? GemmMatrix{nullptr, b16.data(), n, true} : GemmMatrix{b.data(), nullptr, n, true};
  gemm(ma, mb, n, n, n, c.data(), n, false, precision);
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    gemm(ma, mb, n, n, n, c.data(), n, false, precision);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * n * n * n / best / 1e9;
}

double sgemm_gflops(int n, int repeats) {
  std::vector<float> a(size_t(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * n * double(n) * n / best / 1e9;
}

double triad_gbps(size_t n, int repeats) {
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  double best = 1e30;
  for (int r = 0; r < repeats + 1; ++r) {
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
    if (r > 0) best = std::min(best, seconds_since(t0));
  }
  return 3.0 * n * sizeof(float) / best / 1e9;
}

// Read-only streaming (what decoding does with the weights): sum of n floats, each thread one
// contiguous part read as four runs in step, as the decode kernel reads its weight rows (gemv.cpp;
// one run per thread left bandwidth unused, bench/NOTES.md change 25), 16 partial sums per run so
// the adds do not form one latency chain.
double read_gbps(size_t n, int repeats) {
  constexpr size_t kRuns = 4, kLine = 16;
  std::vector<float> a(n, 1.0f);
  double best = 1e30;
  float sink = 0.0f;
  for (int r = 0; r < repeats + 1; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    float total = 0.0f;
#pragma omp parallel reduction(+ : total)
    {
      const size_t t = static_cast<size_t>(omp_get_thread_num()), threads = static_cast<size_t>(omp_get_num_threads());
      const size_t lines = n / kLine, lo = lines * t / threads, per_run = (lines * (t + 1) / threads - lo) / kRuns;
      const float* run[kRuns];
      for (size_t s = 0; s < kRuns; ++s) run[s] = a.data() + (lo + s * per_run) * kLine;
      float acc[kRuns][kLine] = {};
      for (size_t i = 0; i < per_run * kLine; i += kLine)
        for (size_t s = 0; s < kRuns; ++s)
#pragma omp simd
          for (size_t j = 0; j < kLine; ++j) acc[s][j] += run[s][i + j];
      for (const auto& line : acc)
        for (float v : line) total += v;
    }
    sink += total;
    if (r > 0) best = std::min(best, seconds_since(t0));
  }
  if (sink < 0.0f) fmt::print("");  // keeps the sums live
  // The bytes read: each thread's whole runs (at most 4 lines per thread left unread).
  const size_t threads = static_cast<size_t>(omp_get_max_threads());
  const size_t read = n / kLine / threads / kRuns * kRuns * threads * kLine;
  return read * sizeof(float) / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    fmt::print(stderr, "usage: forward_bench MODEL_DIR [--seq-len N] [--decode N] [--repeats N] [--weight-dtype f32|bf16]"
                       " [--compute-dtype f32|bf16] [--no-limits] [--json]\n");
    return 2;
  }
  std::string dir = argv[1];
  int64_t seq_len = 512, decode = 128;
  int repeats = 3;
  std::string weight_dtype = "f32", compute_dtype = "f32";
  bool limits = true, json = false;
  for (int i = 2; i < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--no-limits" || flag == "--json") {  // switches without a value
      if (flag == "--json") json = true;
      else limits = false;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      fmt::print(stderr, "{} needs a value\n", flag);
      return 2;
    }
    if (flag == "--seq-len") seq_len = std::stoll(argv[i + 1]);
    else if (flag == "--decode") decode = std::stoll(argv[i + 1]);
    else if (flag == "--repeats") repeats = std::stoi(argv[i + 1]);
    else if (flag == "--weight-dtype" && (std::string(argv[i + 1]) == "f32" || std::string(argv[i + 1]) == "bf16"))
      weight_dtype = argv[i + 1];
    else if (flag == "--compute-dtype" && (std::string(argv[i + 1]) == "f32" || std::string(argv[i + 1]) == "bf16"))
      compute_dtype = argv[i + 1];
    else {
      fmt::print(stderr, "unknown flag or value: {} {}\n", flag, argv[i + 1]);
      return 2;
    }
  }
  try {
    Model model = model_load(dir);  // first: a bad directory fails before the limits' ~10 s of measuring
    fmt::print("threads        {} (OpenMP), {} (OpenBLAS)\n", omp_get_max_threads(), openblas_get_num_threads());
    fmt::print("openblas       {}\n", openblas_get_config());
    double peak = 0, blas = 0, bw = 0, read_bw = 0;
    const bool bf16_math = compute_dtype == "bf16" && cpu_has_native_bf16();
    if (compute_dtype == "bf16" && !bf16_math) fmt::print("compute        bf16 asked for; no native bf16 products here: f32\n");
    if (bf16_math) weight_dtype = "bf16";
    if (limits) {
      blas = sgemm_gflops(2048, 3);
      fmt::print("sgemm          {:.1f} GFLOP/s (OpenBLAS, 2048^3, best of 3)\n", blas);
      const double f32 = onednn_gflops(2048, 3, GemmPrecision::f32);
      fmt::print("onednn f32     {:.1f} GFLOP/s (2048^3, best of 3; {})\n", f32,
                 gemm_implementation(2048, 2048, 2048, GemmPrecision::f32));
      double bf16 = 0;
      if (cpu_has_native_bf16()) {
        bf16 = onednn_gflops(2048, 3, GemmPrecision::bf16);
        fmt::print("onednn bf16    {:.1f} GFLOP/s (2048^3, best of 3; {})\n", bf16,
                   gemm_implementation(2048, 2048, 2048, GemmPrecision::bf16));
      }
      peak = bf16_math ? bf16 : f32;  // the products' own limit
      bw = triad_gbps(size_t(1) << 26, 3);
      fmt::print("triad          {:.1f} GB/s (3 x 256 MB streams)\n", bw);
      read_bw = read_gbps(size_t(1) << 27, 3);
      fmt::print("read           {:.1f} GB/s (512 MB read only, four runs in step per thread)\n", read_bw);
    }

    const ModelConfig& c = model.config();
    std::mt19937 rng(1);
    std::uniform_int_distribution<int32_t> token(0, int32_t(c.vocab_size - 1));
    TokenBatch batch;
    batch.seq_len = seq_len;
    for (int64_t t = 0; t < seq_len; ++t) batch.ids.push_back(token(rng));

    // FLOPs of the dense layers per token (2 per multiply-add) and of attention for the whole prefill.
    const double D = c.hidden_size, I = c.intermediate_size, L = c.num_hidden_layers, V = c.vocab_size;
    const double dense = 2.0 * L * (D * c.q_dim() * 2 + D * c.kv_dim() * 2 + 3 * D * I);
    const double attention = 2.0 * L * c.num_attention_heads * c.head_dim * 2 * (seq_len * (seq_len + 1) / 2.0);

    std::vector<float> logits;
    double max_logit_diff = 0, max_logit = 0;
    if (weight_dtype == "bf16") {  // the same logits before and after keeping the matrices in bf16
      TokenBatch head = batch;
      head.seq_len = std::min<int64_t>(seq_len, 64);
      head.ids.resize(static_cast<size_t>(head.seq_len));
      std::vector<float> ref;
      model.forward(head, nullptr, LogitsMode::all, ref);
      model.keep_matrices_in_bf16();
      if (bf16_math) model.place_on(cpu_backend(MathMode::bf16));
      model.forward(head, nullptr, LogitsMode::all, logits);
      for (size_t i = 0; i < ref.size(); ++i) {
        max_logit_diff = std::max(max_logit_diff, double(std::abs(logits[i] - ref[i])));
        max_logit = std::max(max_logit, double(std::abs(ref[i])));
      }
      fmt::print("weights        matrices in bf16{}: {:.1f} MB; max |logit difference| from float32 {:.3g} "
                 "(max |logit| {:.3g}, {} positions)\n",
                 bf16_math ? ", bf16 products" : "", model.weight_bytes() / 1e6, max_logit_diff, max_logit, head.seq_len);
    }
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      model.forward(batch, nullptr, LogitsMode::last, logits);
      best = std::min(best, seconds_since(t0));
    }
    double flops = dense * seq_len + attention + 2.0 * D * V;
    fmt::print("prefill        T={} batch 1: {:.1f} tokens/s, {:.3f} s, {:.1f} GFLOP/s", seq_len, seq_len / best, best,
               flops / best / 1e9);
    if (peak > 0) fmt::print(" = {:.0f}% of oneDNN {}", 100.0 * flops / best / 1e9 / peak, bf16_math ? "bf16" : "f32");
    fmt::print(" (best of {})\n", repeats);
    double decode_tps = 0;
    const double weight_bytes = weight_dtype == "bf16" ? double(model.weight_bytes()) : 4.0 * model.table().parameter_count();

    if (decode > 0) {
      KVCache cache(c, 1, seq_len + decode, model.backend());
      TokenBatch prompt = batch;
      model.forward(prompt, &cache, LogitsMode::last, logits);
      TokenBatch step;
      step.seq_len = 1;
      step.ids = {token(rng)};
      auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < decode; ++i) {
        model.forward(step, &cache, LogitsMode::last, logits);
        step.ids[0] = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      }
      double s = seconds_since(t0);
      decode_tps = decode / s;
      fmt::print("decode         {} tokens after {}: {:.1f} tokens/s ({:.1f} ms/token)", decode, seq_len, decode_tps,
                 1000 * s / decode);
      if (bw > 0)
        fmt::print("; {} weight-streaming bound {:.1f} tokens/s (triad), {:.1f} (read)", weight_dtype,
                   bw * 1e9 / weight_bytes, read_bw * 1e9 / weight_bytes);
      fmt::print("\n");
    }
    if (json)
      fmt::print("{{\"seq_len\": {}, \"prefill_tokens_per_s\": {:.3f}, \"prefill_gflops\": {:.3f}, \"sgemm_gflops\": {:.3f}, \"gemm_gflops\": {:.3f}, "
                 "\"triad_gbps\": {:.3f}, \"read_gbps\": {:.3f}, \"decode_tokens\": {}, \"decode_tokens_per_s\": {:.3f}, \"weight_bytes\": {:.0f}, "
                 "\"weight_dtype\": \"{}\", \"max_logit_diff\": {:.6g}, \"max_logit\": {:.6g}}}\n",
                 seq_len, seq_len / best, flops / best / 1e9, blas, peak, bw, read_bw, decode, decode_tps, weight_bytes, weight_dtype,
                 max_logit_diff, max_logit);
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  return 0;
}
