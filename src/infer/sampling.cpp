#include "infer/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/error.h"

namespace difftx {

Sampler::Sampler(const SamplingOptions& o) : options_(o), rng_(o.seed) {
  if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature))
    fail<ConfigError>("--temperature must be >= 0 (0 = greedy), got {}", o.temperature);
  if (o.top_k < 0) fail<ConfigError>("--top-k must be >= 0 (0 = off), got {}", o.top_k);
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) fail<ConfigError>("--top-p must be in (0, 1], got {}", o.top_p);
}

int32_t Sampler::next(const float* logits, int64_t vocab) {
  if (options_.temperature == 0.0f)
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);

  // Candidates sorted by logit, descending (ties: lower id first).
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = options_.top_k > 0 ? std::min(options_.top_k, vocab) : vocab;
  auto better = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), better);
  order.resize(static_cast<size_t>(keep));

  std::vector<double> p(order.size());
  const double mx = logits[order[0]] / options_.temperature;
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i) sum += (p[i] = std::exp(logits[order[i]] / options_.temperature - mx));
  for (double& x : p) x /= sum;
  if (options_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double mass = 0;
    size_t n = 0;
    while (n < p.size() && mass < options_.top_p) mass += p[n++];
    p.resize(std::max<size_t>(n, 1));
    order.resize(p.size());
  }
  std::discrete_distribution<size_t> pick(p.begin(), p.end());
  return order[pick(rng_)];
}

}  // namespace difftx
