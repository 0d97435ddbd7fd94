#include "infer/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "model/finite_logits.h"
#include "model/kv_cache.h"

namespace difftx {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TokenBatch single_row(std::span<const int32_t> ids) {
  TokenBatch b;
  b.seq_len = static_cast<int64_t>(ids.size());
  b.ids.assign(ids.begin(), ids.end());
  return b;
}

}  // namespace

GenerateResult generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& o,
                        const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) fail<ShapeError>("generate: the prompt has no tokens");
  if (o.max_new_tokens < 0) fail<ConfigError>("--max-new-tokens must be >= 0, got {}", o.max_new_tokens);
  const int64_t V = model.config().vocab_size;
  Sampler sampler(o.sampling);
  sampler.prime(prompt);
  GenerateResult r;
  std::vector<int32_t> all(prompt.begin(), prompt.end());
  std::vector<float> logits(static_cast<size_t>(V));
  std::unique_ptr<KVCache> cache;
  if (o.use_cache)
    cache = std::make_unique<KVCache>(model.config(), 1, static_cast<int64_t>(all.size()) + o.max_new_tokens,
                                      model.backend());
  Backend& backend = *model.backend();

  auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    const bool whole = step == 0 || !o.use_cache;
    const Buffer last = model.forward_on_backend(single_row(whole ? std::span<const int32_t>(all)
                                                                  : std::span<const int32_t>(&all.back(), 1)),
                                                 cache.get(), LogitsMode::last);
    // Greedy choices on unprocessed logits are made where the logits are (only the id crosses to
    // the host); sampling, biases and penalties take the row to the host's Sampler.
    // A NaN anywhere in the hidden state makes every logit NaN (weights are checked finite at
    // load), so on the greedy path the chosen logit tells.
    int32_t id = 0;
    if (sampler.plain_argmax()) {
      backend.argmax_host(last.as<const float>(), 1, V, &id);
      float chosen = 0;
      backend.download(&chosen, last.as<const float>() + id, sizeof(float));
      if (!std::isfinite(chosen)) fail_non_finite(model, "the logits", static_cast<int64_t>(all.size()) - 1);
    } else {
      backend.download(logits.data(), last.as<const float>(), logits.size() * sizeof(float));
      if (first_non_finite_row(logits.data(), 1, V) >= 0)
        fail_non_finite(model, "the logits", static_cast<int64_t>(all.size()) - 1);
      id = sampler.next(logits.data(), V);
    }
    if (step == 0) {
      r.prompt_seconds = seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
    }
    all.push_back(id);
    r.new_ids.push_back(id);
    if (on_token) on_token(id);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end()) {
      r.stopped = true;
      break;
    }
  }
  r.generate_seconds = seconds_since(t0);
  return r;
}

std::vector<int32_t> stop_ids_for(const ModelConfig& config, std::optional<int32_t> tokenizer_eos) {
  std::vector<int32_t> ids;
  for (int64_t id : config.eos_token_ids) ids.push_back(static_cast<int32_t>(id));
  if (tokenizer_eos && std::find(ids.begin(), ids.end(), *tokenizer_eos) == ids.end()) ids.push_back(*tokenizer_eos);
  return ids;
}

}  // namespace difftx
