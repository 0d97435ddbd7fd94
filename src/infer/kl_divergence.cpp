#include "infer/kl_divergence.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "model/finite_logits.h"

namespace difftx {

namespace {

constexpr int64_t kLogitRows = 128;  // rows of logits held at once, per model

// Rows [rows, V] of next-token logits of `hidden` rows (on the model's backend), on the host.
std::vector<float> host_logits(const Model& m, const float* hidden, int64_t rows) {
  const int64_t V = m.config().vocab_size;
  Buffer logits = m.backend()->alloc_array<float>(rows * V);
  m.lm_head_forward(hidden, rows, logits.as<float>());
  std::vector<float> out(static_cast<size_t>(rows * V));
  m.backend()->download(out.data(), logits.as<const float>(), out.size() * sizeof(float));
  return out;
}

// log sum exp of a row, in double.
double log_sum_exp(const float* row, int64_t V) {
  const double mx = *std::max_element(row, row + V);
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(row[v]) - mx);
  return mx + std::log(s);
}

struct RowStats {
  double kld = 0, nll = 0, base_nll = 0, delta_p = 0;
  bool same_top1 = false;
};

RowStats row_stats(const float* q_row, const float* p_row, int64_t V, int32_t target) {
  const double lse_q = log_sum_exp(q_row, V), lse_p = log_sum_exp(p_row, V);
  RowStats s;
  double kld = 0;
  for (int64_t v = 0; v < V; ++v) {
    const double lp = p_row[v] - lse_p, lq = q_row[v] - lse_q;
    kld += std::exp(lp) * (lp - lq);
  }
  s.kld = std::max(0.0, kld);  // >= 0 in exact arithmetic; rounding can leave -1e-17
  const int64_t top_p = std::max_element(p_row, p_row + V) - p_row, top_q = std::max_element(q_row, q_row + V) - q_row;
  s.same_top1 = top_p == top_q;
  s.delta_p = std::exp(q_row[top_p] - lse_q) - std::exp(p_row[top_p] - lse_p);
  s.nll = lse_q - q_row[target];
  s.base_nll = lse_p - p_row[target];
  return s;
}

// The q-quantile of sorted values, interpolating linearly between order statistics.
double quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(pos);
  if (lo + 1 >= sorted.size()) return sorted.back();
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

}  // namespace

KlDivergenceResult evaluate_kl_divergence(const Model& model, const Model& base, std::span<const int32_t> ids,
                                          const EvaluateOptions& o,
                                          const std::function<void(int64_t, int64_t)>& on_window) {
  const int64_t V = model.config().vocab_size;
  if (base.config().vocab_size != V)
    fail<ConfigError>("--kl-base: the model's vocabulary has {} entries but the base model's has {}; KL divergence "
                      "compares two models sharing one vocabulary",
                      V, base.config().vocab_size);
  KlDivergenceResult r;
  r.tokens = static_cast<int64_t>(ids.size());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<double> klds;
  double nll = 0, base_nll = 0, same = 0, delta_sq = 0;
  sliding_windows(r.tokens, o, [&](const ScoredWindow& w, int64_t, int64_t total_windows) {
    TokenBatch batch;
    batch.seq_len = w.end - w.begin;
    batch.ids.assign(ids.begin() + w.begin, ids.begin() + w.end);
    const Buffer hq = model.forward_on_backend(batch, nullptr, LogitsMode::hidden);
    const Buffer hp = base.forward_on_backend(batch, nullptr, LogitsMode::hidden);
    for (int64_t p0 = w.first; p0 < w.last; p0 += kLogitRows) {
      const int64_t rows = std::min(kLogitRows, w.last - p0);
      const std::vector<float> q = host_logits(model, hq.as<const float>() + p0 * model.config().hidden_size, rows);
      const std::vector<float> p = host_logits(base, hp.as<const float>() + p0 * base.config().hidden_size, rows);
      if (const int64_t bad = first_non_finite_row(q.data(), rows, V); bad >= 0)
        fail_non_finite(model, "the logits", w.begin + p0 + bad);
      if (const int64_t bad = first_non_finite_row(p.data(), rows, V); bad >= 0)
        fail_non_finite(base, "the base model's logits", w.begin + p0 + bad);
      std::vector<RowStats> stats(static_cast<size_t>(rows));
#pragma omp parallel for schedule(static)
      for (int64_t k = 0; k < rows; ++k)
        stats[k] = row_stats(&q[k * V], &p[k * V], V, ids[w.begin + p0 + k + 1]);
      for (const RowStats& s : stats) {  // in position order: the same sums on every run
        klds.push_back(s.kld);
        nll += s.nll;
        base_nll += s.base_nll;
        same += s.same_top1 ? 1.0 : 0.0;
        delta_sq += s.delta_p * s.delta_p;
      }
    }
    r.scored += w.last - w.first;
    r.windows += 1;
    if (on_window) on_window(r.windows, total_windows);
  });
  const auto n = static_cast<double>(r.scored);
  r.mean_loss = nll / n;
  r.base_mean_loss = base_nll / n;
  r.perplexity = std::exp(r.mean_loss);
  r.base_perplexity = std::exp(r.base_mean_loss);
  double kld_sum = 0;
  for (double k : klds) kld_sum += k;
  r.kld_mean = kld_sum / n;
  std::sort(klds.begin(), klds.end());
  r.kld_median = quantile(klds, 0.5);
  r.kld_p99_9 = quantile(klds, 0.999);
  r.kld_max = klds.back();
  r.same_top1 = same / n;
  r.rms_delta_p = std::sqrt(delta_sq / n);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace difftx
