#include "infer/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace difftx {

Sampler::Sampler(const SamplingOptions& o) : options_(o), rng_(o.seed) {
  if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature))
    fail<ConfigError>("--temperature must be >= 0 (0 = greedy), got {}", o.temperature);
  if (o.top_k < 0) fail<ConfigError>("--top-k must be >= 0 (0 = off), got {}", o.top_k);
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) fail<ConfigError>("--top-p must be in (0, 1], got {}", o.top_p);
  if (!(o.repetition_penalty >= kMinRepetitionPenalty && o.repetition_penalty <= kMaxRepetitionPenalty))
    fail<ConfigError>("--repetition-penalty must be in [{}, {}] (1 = off), got {}", kMinRepetitionPenalty,
                      kMaxRepetitionPenalty, o.repetition_penalty);
  if (!(o.frequency_penalty >= -2.0f && o.frequency_penalty <= 2.0f))
    fail<ConfigError>("--frequency-penalty must be in [-2, 2] (0 = off), got {}", o.frequency_penalty);
  if (!(o.presence_penalty >= -2.0f && o.presence_penalty <= 2.0f))
    fail<ConfigError>("--presence-penalty must be in [-2, 2] (0 = off), got {}", o.presence_penalty);
  for (const auto& [id, bias] : o.logit_bias) {
    if (id < 0) fail<ConfigError>("logit bias: token id {} is negative", id);
    if (!(bias >= -100.0f && bias <= 100.0f))
      fail<ConfigError>("logit bias of token {}: the bias must be in [-100, 100], got {}", id, bias);
  }
  processes_ = !o.logit_bias.empty() || o.repetition_penalty != 1.0f || o.frequency_penalty != 0.0f ||
               o.presence_penalty != 0.0f;
}

void Sampler::prime(std::span<const int32_t> prompt) {
  if (options_.repetition_penalty != 1.0f) seen_.insert(prompt.begin(), prompt.end());
}

void Sampler::process(float* logits, int64_t vocab) const {
  for (const auto& [id, bias] : options_.logit_bias) {
    if (id >= vocab) fail<ShapeError>("logit bias: token id {} is outside the vocabulary [0, {})", id, vocab);
    logits[id] += bias;
  }
  if (const float p = options_.repetition_penalty; p != 1.0f)
    for (int32_t id : seen_)
      if (id >= 0 && id < vocab) logits[id] = logits[id] < 0.0f ? logits[id] * p : logits[id] / p;
  if (options_.frequency_penalty != 0.0f || options_.presence_penalty != 0.0f)
    for (const auto& [id, count] : generated_)
      if (id >= 0 && id < vocab)
        logits[id] -= static_cast<float>(count) * options_.frequency_penalty + options_.presence_penalty;
}

int32_t Sampler::next(const float* logits, int64_t vocab) {
  const float* row = logits;
  if (processes_) {
    processed_.assign(logits, logits + vocab);
    process(processed_.data(), vocab);
    row = processed_.data();
  }
  int32_t id = 0;
  if (options_.temperature == 0.0f) {
    id = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
  } else {
    // Candidates sorted by logit, descending (ties: lower id first).
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    int64_t keep = options_.top_k > 0 ? std::min(options_.top_k, vocab) : vocab;
    auto better = [&](int32_t a, int32_t b) { return row[a] != row[b] ? row[a] > row[b] : a < b; };
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), better);
    order.resize(static_cast<size_t>(keep));

    std::vector<double> p(order.size());
    const double mx = row[order[0]] / options_.temperature;
    double sum = 0;
    for (size_t i = 0; i < order.size(); ++i) sum += (p[i] = std::exp(row[order[i]] / options_.temperature - mx));
    for (double& x : p) x /= sum;
    if (options_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
      double mass = 0;
      size_t n = 0;
      while (n < p.size() && mass < options_.top_p) mass += p[n++];
      p.resize(std::max<size_t>(n, 1));
      order.resize(p.size());
    }
    std::discrete_distribution<size_t> pick(p.begin(), p.end());
    id = order[pick(rng_)];
  }
  if (options_.repetition_penalty != 1.0f) seen_.insert(id);
  if (options_.frequency_penalty != 0.0f || options_.presence_penalty != 0.0f) ++generated_[id];
  return id;
}

}  // namespace difftx
