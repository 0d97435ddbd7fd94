// Generation: greedy with and without the KV cache gives identical tokens for every layout;
// sampling follows its options.
#include "infer/generate.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

#include "../model/golden_util.h"
#include "common/error.h"
#include "model/model_dir.h"

namespace difftx {
namespace {

class GenerateTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerateTest, GreedyWithAndWithoutCacheAgree) {
  auto g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g);
  std::vector<int32_t> prompt(g.batch.ids.begin(), g.batch.ids.begin() + 4);
  GenerateOptions o;
  o.max_new_tokens = 12;
  GenerateResult cached = generate(model, prompt, o);
  o.use_cache = false;
  GenerateResult uncached = generate(model, prompt, o);
  EXPECT_EQ(cached.new_ids, uncached.new_ids);
  ASSERT_EQ(cached.new_ids.size(), 12u);
  // The first new token is the argmax of the full forward's last logits.
  TokenBatch b;
  b.seq_len = 4;
  b.ids = prompt;
  std::vector<float> logits;
  model.forward(b, nullptr, LogitsMode::last, logits);
  EXPECT_EQ(cached.new_ids[0], std::max_element(logits.begin(), logits.end()) - logits.begin());
}

INSTANTIATE_TEST_SUITE_P(Layouts, GenerateTest,
                         ::testing::Values("llama_mha", "qwen3_qknorm", "mistral_sliding", "diff_double_subln_gqa",
                                           "diff_split_subln_gqa", "diffllama_gqa", "diff_qwen2_double"),
                         [](const auto& i) { return i.param; });

TEST(Generate, StopsAtAStopIdAndStreamsEachToken) {
  auto g = test::golden_case_load("llama_mha");
  Model model = test::golden_model_load(g);
  std::vector<int32_t> prompt = {1, 2, 3};
  GenerateOptions o;
  o.max_new_tokens = 10;
  GenerateResult free_run = generate(model, prompt, o);
  o.stop_ids = {free_run.new_ids[2]};
  std::vector<int32_t> streamed;
  GenerateResult r = generate(model, prompt, o, [&](int32_t id) { streamed.push_back(id); });
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.new_ids, std::vector<int32_t>(free_run.new_ids.begin(), free_run.new_ids.begin() + 3));
  EXPECT_EQ(streamed, r.new_ids);
}

TEST(Sampler, GreedyTopKAndTopP) {
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  Sampler greedy(SamplingOptions{});
  EXPECT_EQ(greedy.next(logits.data(), 5), 1);  // first of the tied maxima
  SamplingOptions k1;
  k1.temperature = 1.0f;
  k1.top_k = 1;
  Sampler one(k1);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(one.next(logits.data(), 5), 1);
  SamplingOptions k3;
  k3.temperature = 0.7f;
  k3.top_k = 3;
  k3.seed = 5;
  Sampler three(k3);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 3000; ++i) seen[three.next(logits.data(), 5)]++;
  EXPECT_EQ(seen.count(0), 0u);
  EXPECT_EQ(seen.count(4), 0u);
  // p(1) = p(3) = e^(3/0.7) / (2 e^(3/0.7) + e^(2/0.7)) = 0.4555
  EXPECT_NEAR(seen[1] / 3000.0, 0.4555, 0.04);
  EXPECT_NEAR(seen[2] / 3000.0, 1 - 2 * 0.4555, 0.03);
  SamplingOptions p;
  p.temperature = 1.0f;
  p.top_p = 0.5f;  // the largest token (0.42 with these logits) is not enough; the two tied ones are kept
  Sampler nucleus(p);
  for (int i = 0; i < 200; ++i) {
    int32_t id = nucleus.next(logits.data(), 5);
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
  SamplingOptions bad;
  bad.top_p = 0.0f;
  EXPECT_THROW(Sampler{bad}, ConfigError);
  bad = SamplingOptions{};
  bad.temperature = -1.0f;
  EXPECT_THROW(Sampler{bad}, ConfigError);
}

// Greedy ids under each processor, step by step, from the formulas in infer/sampling.h.
std::vector<int32_t> greedy_steps(const SamplingOptions& o, const std::vector<float>& logits, int steps,
                                  std::vector<int32_t> prompt = {}) {
  Sampler s(o);
  s.prime(prompt);
  std::vector<int32_t> ids;
  for (int i = 0; i < steps; ++i) ids.push_back(s.next(logits.data(), static_cast<int64_t>(logits.size())));
  return ids;
}

TEST(Sampler, PenaltiesAndLogitBias) {
  const std::vector<float> logits = {3.0f, 2.5f, 0.0f, -1.0f};
  SamplingOptions f;
  f.frequency_penalty = 0.4f;  // id 0: 3 - 0.4 c0 against id 1: 2.5 - 0.4 c1
  EXPECT_EQ(greedy_steps(f, logits, 5), (std::vector<int32_t>{0, 0, 1, 0, 1}));
  EXPECT_FALSE(Sampler(f).plain_argmax());
  SamplingOptions p;
  p.presence_penalty = 0.6f;  // 3 - 0.6 = 2.4 < 2.5 once 0 was generated; 2.5 - 0.6 < 2.4 once 1 was
  EXPECT_EQ(greedy_steps(p, logits, 4), (std::vector<int32_t>{0, 1, 0, 0}));
  SamplingOptions r;
  r.repetition_penalty = 2.0f;  // the prompt's id 0 starts at 3 / 2 = 1.5; a negative logit is doubled
  EXPECT_EQ(greedy_steps(r, logits, 3, {0, 3}), (std::vector<int32_t>{1, 0, 0}));
  EXPECT_EQ(greedy_steps(r, {-0.5f, -0.6f}, 2), (std::vector<int32_t>{0, 1}));  // -1.0 < -0.6 after step 1
  SamplingOptions b;
  b.logit_bias = {{2, 3.1f}, {0, -100.0f}};
  EXPECT_EQ(greedy_steps(b, logits, 2), (std::vector<int32_t>{2, 2}));
  b.temperature = 1.0f;  // sampling from the biased logits: id 0 (bias -100) never comes
  Sampler sampled(b);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 2000; ++i) seen[sampled.next(logits.data(), 4)]++;
  EXPECT_EQ(seen.count(0), 0u);
  // softmax(2.5, 3.1, -1): p(2) = 1 / (1 + e^-0.6 + e^-4.1) = 0.6413
  EXPECT_NEAR(seen[2] / 2000.0, 0.6413, 0.04);
  EXPECT_EQ(logits, (std::vector<float>{3.0f, 2.5f, 0.0f, -1.0f}));  // the caller's row is untouched
  EXPECT_TRUE(Sampler(SamplingOptions{}).plain_argmax());
  SamplingOptions far;
  far.logit_bias = {{4, 1.0f}};
  Sampler far_sampler(far);
  EXPECT_THROW(far_sampler.next(logits.data(), 4), ShapeError);
  using Change = std::function<void(SamplingOptions&)>;
  for (const Change& bad : std::vector<Change>{[](SamplingOptions& o) { o.repetition_penalty = 0.0f; },
                                              [](SamplingOptions& o) { o.repetition_penalty = 1e-38f; },
                                              [](SamplingOptions& o) { o.repetition_penalty = 101.0f; },
                                              [](SamplingOptions& o) { o.frequency_penalty = 2.5f; },
                                              [](SamplingOptions& o) { o.presence_penalty = -2.01f; },
                                              [](SamplingOptions& o) { o.logit_bias = {{1, 100.5f}}; },
                                              [](SamplingOptions& o) { o.logit_bias = {{-1, 1.0f}}; }}) {
    SamplingOptions o;
    bad(o);
    EXPECT_THROW(Sampler{o}, ConfigError);
  }
}

// generate() with every processor on, against greedy decoding written out here from the formulas
// on full forwards (no KV cache): the prompt counts for repetition_penalty only, generated ids for
// all three penalties.
TEST(Generate, PenaltiesMatchTheirFormulasOnFullForwards) {
  const Model model = model_load(std::string(DIFFTX_SOURCE_DIR) + "/examples/models/wp-llama-12m");
  // "The river was not only the first time, but the French had been sent to the French", which
  // the model continues with ", and the French ..." unless the prompt's ids are penalised.
  const std::vector<int32_t> prompt = {1,   415, 7782, 403, 459, 865,  272, 907, 727, 28725,
                                       562, 272, 4949, 553, 750, 2662, 298, 272, 4949};
  GenerateOptions o;
  o.max_new_tokens = 10;
  o.sampling.repetition_penalty = 1.3f;
  o.sampling.frequency_penalty = 0.5f;
  o.sampling.presence_penalty = 0.25f;
  o.sampling.logit_bias = {{415, 1.5f}};
  const GenerateResult r = generate(model, prompt, o);

  std::vector<int32_t> all = prompt, expected;
  std::map<int32_t, int> counts;
  for (int step = 0; step < 10; ++step) {
    TokenBatch b;
    b.seq_len = static_cast<int64_t>(all.size());
    b.ids = all;
    std::vector<float> logits;
    model.forward(b, nullptr, LogitsMode::last, logits);
    logits[415] += 1.5f;
    for (int32_t id : std::set<int32_t>(all.begin(), all.end()))
      logits[id] = logits[id] < 0 ? logits[id] * 1.3f : logits[id] / 1.3f;
    for (auto [id, c] : counts) logits[id] -= c * 0.5f + 0.25f;
    const auto id = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    expected.push_back(id);
    all.push_back(id);
    ++counts[id];
  }
  EXPECT_EQ(r.new_ids, expected);
  o.sampling = SamplingOptions{};
  EXPECT_NE(generate(model, prompt, o).new_ids, expected);  // the processors changed the choice
}

}  // namespace
}  // namespace difftx
