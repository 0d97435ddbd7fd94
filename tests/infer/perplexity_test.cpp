// Sliding-window perplexity against a direct computation from full-window logits.
#include "infer/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../model/golden_util.h"
#include "common/error.h"

namespace difftx {
namespace {

// Sum of -log p(ids[t] | ids[max(0, window start) .. t-1]) computed window by window from LogitsMode::all.
double brute_force_nll(const Model& m, const std::vector<int32_t>& ids, int64_t context, int64_t stride,
                       int64_t& scored) {
  const int64_t N = ids.size(), V = m.config().vocab_size;
  double total = 0;
  scored = 0;
  int64_t done = 1;
  for (int64_t begin = 0; done < N; begin += stride) {
    int64_t end = std::min(begin + context, N);
    TokenBatch b;
    b.seq_len = end - begin;
    b.ids.assign(ids.begin() + begin, ids.begin() + end);
    std::vector<float> logits;
    m.forward(b, nullptr, LogitsMode::all, logits);
    for (int64_t t = std::max(done, begin + 1); t < end; ++t) {
      const float* row = &logits[(t - 1 - begin) * V];
      double mx = *std::max_element(row, row + V), s = 0;
      for (int64_t v = 0; v < V; ++v) s += std::exp(row[v] - mx);
      total += std::log(s) + mx - row[ids[t]];
      ++scored;
    }
    done = end;
  }
  return total;
}

TEST(Evaluate, MatchesDirectComputation) {
  for (const char* name : {"llama_gqa_tied_padded", "diff_double_subln_gqa", "diffllama_gqa"}) {
    auto g = test::golden_case_load(name);
    Model m = test::golden_model_load(g);
    std::mt19937 rng(3);
    std::uniform_int_distribution<int32_t> tok(0, int32_t(m.config().vocab_size - 1));
    std::vector<int32_t> ids(300);
    for (auto& x : ids) x = tok(rng);
    for (auto [context, stride] : {std::pair{64, 32}, {64, 64}, {50, 7}, {512, 256}}) {
      EvaluateOptions o{context, stride};
      EvaluateResult r = evaluate_perplexity(m, ids, o);
      int64_t scored = 0;
      double expected = brute_force_nll(m, ids, context, stride, scored);
      EXPECT_EQ(r.scored, scored);
      EXPECT_EQ(scored, stride == context ? 299 - (300 - 1) / context : 299);
      EXPECT_NEAR(r.total_nll, expected, 1e-6 * expected) << name << " " << context << "/" << stride;
      EXPECT_NEAR(r.perplexity, std::exp(expected / scored), 1e-4 * r.perplexity);
    }
  }
}

TEST(Evaluate, RejectsBadOptions) {
  auto g = test::golden_case_load("llama_mha");
  Model m = test::golden_model_load(g);
  std::vector<int32_t> ids = {1, 2, 3, 4};
  EXPECT_THROW(evaluate_perplexity(m, ids, {1, 1}), ConfigError);
  EXPECT_THROW(evaluate_perplexity(m, ids, {8, 9}), ConfigError);
  EXPECT_THROW(evaluate_perplexity(m, ids, {8, 0}), ConfigError);
  EXPECT_THROW(evaluate_perplexity(m, std::vector<int32_t>{5}, {8, 4}), ShapeError);
}

}  // namespace
}  // namespace difftx
