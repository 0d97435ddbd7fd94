// Inference throughput of one model on one device, as bench/cuda/hf_bench.py measures
// transformers: prefill (T tokens of one sequence into an empty KV cache, the last position's
// logits) and greedy decoding of N tokens after a P-token prompt at several batch sizes (the
// next ids chosen where the logits are). Prints one JSON object.
//
// Usage: infer_bench MODEL_DIR [--device cuda] [--weight-dtype bf16] [--prefill 2048]
//                   [--prompt 512] [--decode 128] [--batch 1,16] [--repeats 5] [--no-warmup]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/backend.h"
#include "model/model_dir.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace {

using difftx::Backend;
using difftx::KVCache;
using difftx::LogitsMode;
using difftx::Model;
using difftx::TokenBatch;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TokenBatch random_batch(std::mt19937& rng, int64_t B, int64_t T, int64_t V) {
  TokenBatch b;
  b.batch = B;
  b.seq_len = T;
  for (int64_t i = 0; i < B * T; ++i) b.ids.push_back(static_cast<int32_t>(rng() % V));
  return b;
}

// Seconds of one prefill of T tokens: forward into a fresh cache, argmax of the last logits.
double prefill_seconds(const Model& model, const TokenBatch& batch) {
  Backend& be = *model.backend();
  KVCache cache(model.config(), batch.batch, batch.seq_len, model.backend());
  be.synchronize();
  const auto t0 = Clock::now();
  const difftx::Buffer logits = model.forward_on_backend(batch, &cache, LogitsMode::last);
  std::vector<int32_t> ids(static_cast<size_t>(batch.batch));
  be.argmax_host(logits.as<const float>(), batch.batch, model.config().vocab_size, ids.data());
  return seconds_since(t0);
}

// Seconds of `steps` greedy decoding steps of B sequences after a P-token prompt (the prompt's
// prefill is not timed). host_seconds: the part spent before each step's forward call returned
// (queueing its work); the rest is waiting for the device. Near the total: the host is the limit.
double decode_seconds(const Model& model, std::mt19937& rng, int64_t B, int64_t P, int64_t steps,
                      double* host_seconds = nullptr) {
  Backend& be = *model.backend();
  const int64_t V = model.config().vocab_size;
  KVCache cache(model.config(), B, P + steps, model.backend());
  std::vector<int32_t> ids(static_cast<size_t>(B));
  {
    const difftx::Buffer logits = model.forward_on_backend(random_batch(rng, B, P, V), &cache, LogitsMode::last);
    be.argmax_host(logits.as<const float>(), B, V, ids.data());
  }
  const auto t0 = Clock::now();
  double host = 0;
  for (int64_t s = 0; s < steps; ++s) {
    const auto t1 = Clock::now();
    TokenBatch step;
    step.batch = B;
    step.seq_len = 1;
    step.ids = ids;
    const difftx::Buffer logits = model.forward_on_backend(step, &cache, LogitsMode::last);
    host += seconds_since(t1);
    be.argmax_host(logits.as<const float>(), B, V, ids.data());
  }
  if (host_seconds != nullptr) *host_seconds = host;
  return seconds_since(t0);
}

// Bytes of weights one decoding step reads: every parameter but an untied embedding table (its
// rows are gathered, not streamed), matrices at the kept dtype.
double streamed_bytes(const Model& model) {
  double bytes = 0;
  for (const auto& p : model.table().params()) {
    if (p.name == "model.embed_tokens.weight" && !model.config().tie_word_embeddings) continue;
    const bool matrix = p.shape.size() == 2;
    bytes += static_cast<double>(p.numel) * (matrix && model.matrices_in_bf16() ? 2 : 4);
  }
  return bytes;
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> v;
  size_t at = 0;
  while (at < s.size()) {
    const size_t comma = s.find(',', at);
    v.push_back(std::stoll(s.substr(at, comma - at)));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: infer_bench MODEL_DIR [--device D] [--weight-dtype f32|bf16] [--prefill T] [--prompt P] "
                       "[--decode N] [--batch 1,16] [--repeats R]\n");
    return 2;
  }
  std::string dir = argv[1], device = "cuda", dtype = "bf16", batches = "1,16";
  int64_t prefill = 2048, prompt = 512, decode = 128, repeats = 5;
  bool warmup = true;
  for (int i = 2; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--no-warmup") {  // for profilers: only the measured runs
      warmup = false;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      fmt::print(stderr, "infer_bench: {} needs a value\n", k);
      return 2;
    }
    const std::string v = argv[i + 1];
    if (k == "--device") device = v;
    else if (k == "--weight-dtype") dtype = v;
    else if (k == "--prefill") prefill = std::stoll(v);
    else if (k == "--prompt") prompt = std::stoll(v);
    else if (k == "--decode") decode = std::stoll(v);
    else if (k == "--batch") batches = v;
    else if (k == "--repeats") repeats = std::stoll(v);
    else {
      fmt::print(stderr, "infer_bench: unknown option {}\n", k);
      return 2;
    }
  }
  try {
    const bool bf16 = dtype == "bf16";
    auto backend = difftx::make_backend(device, bf16 ? difftx::MathMode::bf16 : difftx::MathMode::f32);
    auto t0 = Clock::now();
    Model model = difftx::model_load(dir);
    if (bf16) model.keep_matrices_in_bf16();
    model.place_on(backend);
    backend->synchronize();
    const double load = seconds_since(t0);
    std::mt19937 rng(42);
    const int64_t V = model.config().vocab_size;
    nlohmann::ordered_json out;
    out["model"] = dir;
    out["model_type"] = model.config().model_type;
    out["device"] = backend->name();
    out["weight_dtype"] = dtype;
    out["parameters"] = model.table().parameter_count();
    out["weight_bytes"] = model.weight_bytes();
    out["streamed_bytes_per_step"] = streamed_bytes(model);
    out["load_seconds"] = load;

    const TokenBatch long_batch = random_batch(rng, 1, prefill, V);
    if (warmup) prefill_seconds(model, long_batch);  // allocations, cuBLASLt plans
    std::vector<double> times;
    for (int64_t r = 0; r < repeats; ++r) times.push_back(prefill_seconds(model, long_batch));
    out["prefill"] = {{"tokens", prefill}, {"seconds", median(times)}, {"tokens_per_second", prefill / median(times)}};

    out["decode"] = nlohmann::ordered_json::array();
    for (int64_t B : parse_list(batches)) {
      if (warmup) decode_seconds(model, rng, B, prompt, std::min<int64_t>(decode, 8));
      std::vector<double> d, h;
      for (int64_t r = 0; r < std::max<int64_t>(1, repeats / 2); ++r) {
        double host = 0;
        d.push_back(decode_seconds(model, rng, B, prompt, decode, &host));
        h.push_back(host);
      }
      const double s = median(d);
      out["decode"].push_back({{"batch", B},
                               {"prompt", prompt},
                               {"steps", decode},
                               {"seconds", s},
                               {"tokens_per_second", static_cast<double>(B * decode) / s},
                               {"ms_per_step", 1e3 * s / static_cast<double>(decode)},
                               {"host_ms_per_step", 1e3 * median(h) / static_cast<double>(decode)}});
    }
    fmt::print("{}\n", out.dump(2));
  } catch (const std::exception& e) {
    fmt::print(stderr, "infer_bench: {}\n", e.what());
    return 2;
  }
  return 0;
}
