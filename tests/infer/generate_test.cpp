// Generation: greedy with and without the KV cache gives identical tokens for every layout;
// sampling follows its options.
#include "infer/generate.h"

#include <gtest/gtest.h>

#include <map>

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

}  // namespace
}  // namespace difftx
