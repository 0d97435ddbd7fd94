// The conversion-quality report (evaluate_kl_divergence) against a direct computation from
// full-window logits, and its exact zero for a model against itself.
#include "infer/kl_divergence.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "../model/golden_util.h"
#include "common/error.h"

namespace difftx {
namespace {

std::vector<int32_t> random_ids(int64_t n, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& x : ids) x = tok(rng);
  return ids;
}

std::vector<double> log_softmax(const float* row, int64_t V) {
  double mx = row[0];
  for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(row[v] - mx);
  std::vector<double> out(V);
  for (int64_t v = 0; v < V; ++v) out[v] = row[v] - mx - std::log(s);
  return out;
}

TEST(KlDivergence, MatchesDirectComputation) {
  const auto gq = test::golden_case_load("diff_double_subln_gqa"), gp = test::golden_case_load("llama_gqa_tied_padded");
  const Model q = test::golden_model_load(gq), p = test::golden_model_load(gp);
  const int64_t V = q.config().vocab_size;
  ASSERT_EQ(p.config().vocab_size, V);
  const std::vector<int32_t> ids = random_ids(150, V, 5);
  const EvaluateOptions o{64, 24};
  const KlDivergenceResult r = evaluate_kl_divergence(q, p, ids, o);

  // Directly: every scored position's statistics from LogitsMode::all of each window. Its float32
  // logits come from one GEMM over the window instead of blocks of rows: equal to ~1e-7 relative.
  constexpr double kTol = 1e-5;
  std::vector<double> klds;
  double nll = 0, base_nll = 0, same = 0, dp2 = 0;
  int64_t windows = 0;
  sliding_windows(static_cast<int64_t>(ids.size()), o, [&](const ScoredWindow& w, int64_t, int64_t) {
    TokenBatch b;
    b.seq_len = w.end - w.begin;
    b.ids.assign(ids.begin() + w.begin, ids.begin() + w.end);
    std::vector<float> lq, lp;
    q.forward(b, nullptr, LogitsMode::all, lq);
    p.forward(b, nullptr, LogitsMode::all, lp);
    for (int64_t pos = w.first; pos < w.last; ++pos) {
      const auto a = log_softmax(&lq[pos * V], V), c = log_softmax(&lp[pos * V], V);
      double kl = 0;
      for (int64_t v = 0; v < V; ++v) kl += std::exp(c[v]) * (c[v] - a[v]);
      klds.push_back(kl);
      const int32_t target = ids[w.begin + pos + 1];
      nll -= a[target];
      base_nll -= c[target];
      const int64_t tq = std::max_element(a.begin(), a.end()) - a.begin(), tp = std::max_element(c.begin(), c.end()) - c.begin();
      same += tq == tp;
      dp2 += std::pow(std::exp(a[tp]) - std::exp(c[tp]), 2);
    }
    ++windows;
  });
  const double n = double(klds.size());
  EXPECT_EQ(r.scored, int64_t(klds.size()));
  EXPECT_EQ(r.windows, windows);
  double mean = 0;
  for (double k : klds) mean += k / n;
  std::sort(klds.begin(), klds.end());
  EXPECT_GT(mean, 0.01);  // two different models: a divergence the test can see
  EXPECT_NEAR(r.kld_mean, mean, kTol * mean);
  EXPECT_NEAR(r.kld_max, klds.back(), kTol * klds.back());
  const size_t mid = klds.size() / 2;  // 149 scored: odd, the median is one order statistic
  ASSERT_EQ(klds.size() % 2, 1u);
  EXPECT_NEAR(r.kld_median, klds[mid], kTol * klds[mid]);
  const double pos = 0.999 * (n - 1);
  const size_t lo = size_t(pos);
  EXPECT_NEAR(r.kld_p99_9, klds[lo] + (pos - lo) * (klds[lo + 1] - klds[lo]), kTol * klds.back());
  EXPECT_NEAR(r.mean_loss, nll / n, kTol * nll / n);
  EXPECT_NEAR(r.base_mean_loss, base_nll / n, kTol * base_nll / n);
  EXPECT_NEAR(r.same_top1, same / n, 1.0 / n);  // a near tie may flip with the last bit of a logit
  EXPECT_NEAR(r.rms_delta_p, std::sqrt(dp2 / n), kTol);
  EXPECT_NEAR(r.perplexity, std::exp(r.mean_loss), kTol * r.perplexity);
}

TEST(KlDivergence, AModelAgainstItselfIsExactlyZero) {
  const auto g = test::golden_case_load("diffllama_gqa");
  const Model m = test::golden_model_load(g), same = test::golden_model_load(g);
  const std::vector<int32_t> ids = random_ids(90, m.config().vocab_size, 7);
  const KlDivergenceResult r = evaluate_kl_divergence(m, same, ids, {32, 16});
  EXPECT_EQ(r.kld_mean, 0.0);
  EXPECT_EQ(r.kld_max, 0.0);
  EXPECT_EQ(r.same_top1, 1.0);
  EXPECT_EQ(r.rms_delta_p, 0.0);
  EXPECT_EQ(r.mean_loss, r.base_mean_loss);
  EXPECT_EQ(r.scored, 89);
}

TEST(KlDivergence, RejectsModelsWithDifferentVocabularies) {
  const auto g = test::golden_case_load("llama_mha");
  const Model m = test::golden_model_load(g);
  ModelConfig smaller = m.config();
  smaller.vocab_size = m.config().vocab_size - 1;
  const Model other(smaller);
  const std::vector<int32_t> ids = {1, 2, 3, 4};
  try {
    evaluate_kl_divergence(m, other, ids, {8, 4});
    FAIL() << "different vocabularies were compared";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("96"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("95"), std::string::npos) << e.what();
  }
  EXPECT_THROW(evaluate_kl_divergence(m, m, std::vector<int32_t>{5}, {8, 4}), ShapeError);
}

}  // namespace
}  // namespace difftx
