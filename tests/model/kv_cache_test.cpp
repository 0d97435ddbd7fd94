// Incremental decoding: prefill n-1 tokens then one decode step equals the full n-token forward,
// for every golden case (every model type, rope type, padding, sliding window).
#include "model/kv_cache.h"

#include <gtest/gtest.h>

#include <memory>

#include "common/error.h"
#include "golden_util.h"
#include "model/model_dir.h"

namespace difftx {
namespace {

TokenBatch slice(const TokenBatch& b, int64_t t0, int64_t t1) {
  TokenBatch s;
  s.batch = b.batch;
  s.seq_len = t1 - t0;
  for (int64_t r = 0; r < b.batch; ++r)
    for (int64_t t = t0; t < t1; ++t) {
      s.ids.push_back(b.ids[r * b.seq_len + t]);
      s.position_ids.push_back(b.position_ids[r * b.seq_len + t]);
      s.attention_mask.push_back(b.attention_mask[r * b.seq_len + t]);
    }
  return s;
}

// Loads the case and its full (cache-free) forward pass.
class KVCacheTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "llama_rope_dynamic")
      GTEST_SKIP() << "dynamic NTK RoPE recomputes its frequencies from the current length, so keys cached at a "
                      "shorter length were rotated differently (transformers behaves the same way)";
    g = test::golden_case_load(GetParam());
    model = std::make_unique<Model>(test::golden_model_load(g));
    V = model->config().vocab_size;
    T = g.batch.seq_len;
    B = g.batch.batch;
    model->forward(g.batch, nullptr, LogitsMode::all, full);
  }
  test::GoldenCase g;
  std::unique_ptr<Model> model;
  int64_t V = 0, T = 0, B = 0;
  std::vector<float> full;
};

TEST_P(KVCacheTest, PrefillThenDecodeEqualsFullForward) {
  KVCache cache(model->config(), B, T);
  std::vector<float> prefill, step;
  model->forward(slice(g.batch, 0, T - 1), &cache, LogitsMode::all, prefill);
  model->forward(slice(g.batch, T - 1, T), &cache, LogitsMode::all, step);
  EXPECT_EQ(cache.length(), T);
  double max_diff = 0, max_ref = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t v = 0; v < V; ++v) {
      max_diff = std::max(max_diff, double(std::abs(step[b * V + v] - full[(b * T + T - 1) * V + v])));
      max_ref = std::max(max_ref, double(std::abs(full[(b * T + T - 1) * V + v])));
      for (int64_t t = 0; t + 1 < T; ++t)
        max_diff = std::max(max_diff, double(std::abs(prefill[(b * (T - 1) + t) * V + v] - full[(b * T + t) * V + v])));
    }
  EXPECT_LE(max_diff / max_ref, 1e-5) << "decode step differs from the full forward";
}

TEST_P(KVCacheTest, TokenByTokenEqualsFullForward) {
  std::vector<float> step;
  KVCache cache(model->config(), B, T + 4);
  double max_diff = 0;
  for (int64_t t = 0; t < T; ++t) {
    model->forward(slice(g.batch, t, t + 1), &cache, LogitsMode::last, step);
    for (int64_t b = 0; b < B; ++b) {
      if (g.batch.attention_mask[b * T + t] == 0) continue;  // padding rows see nothing; not compared
      for (int64_t v = 0; v < V; ++v)
        max_diff = std::max(max_diff, double(std::abs(step[b * V + v] - full[(b * T + t) * V + v])));
    }
  }
  EXPECT_LE(max_diff, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Cases, KVCacheTest, ::testing::ValuesIn(test::golden_case_names()),
                         [](const auto& info) { return info.param; });

TEST(KVCache, RejectsOverflowAndBatchMismatch) {
  auto g = test::golden_case_load("llama_mha");
  Model model = test::golden_model_load(g);
  std::vector<float> logits;
  KVCache small(model.config(), 1, g.batch.seq_len - 1);
  EXPECT_THROW(model.forward(g.batch, &small, LogitsMode::last, logits), ShapeError);
  KVCache wide(model.config(), 2, 64);
  EXPECT_THROW(model.forward(g.batch, &wide, LogitsMode::last, logits), ShapeError);
}

TEST(KVCache, DefaultPositionsContinueFromTheCache) {
  auto g = test::golden_case_load("llama_mha");  // its position ids are 0..T-1
  Model model = test::golden_model_load(g);
  const int64_t T = g.batch.seq_len, V = model.config().vocab_size;
  std::vector<float> full, step;
  TokenBatch b = g.batch;
  b.position_ids.clear();
  model.forward(b, nullptr, LogitsMode::all, full);
  KVCache cache(model.config(), 1, T);
  TokenBatch head = b, tail = b;
  head.seq_len = T - 2;
  head.ids.resize(T - 2);
  head.attention_mask.resize(T - 2);
  tail.seq_len = 2;
  tail.ids.assign(b.ids.end() - 2, b.ids.end());
  tail.attention_mask.assign(2, 1);
  model.forward(head, &cache, LogitsMode::all, step);
  model.forward(tail, &cache, LogitsMode::all, step);
  for (int64_t v = 0; v < V; ++v) EXPECT_NEAR(step[V + v], full[(T - 1) * V + v], 1e-4);
}

TEST(Forward, RejectsIdsOutsideTheVocabulary) {
  auto g = test::golden_case_load("llama_mha");
  Model model = test::golden_model_load(g);
  TokenBatch b = g.batch;
  b.ids[3] = static_cast<int32_t>(model.config().vocab_size);
  std::vector<float> logits;
  try {
    model.forward(b, nullptr, LogitsMode::all, logits);
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos);
  }
  b.ids[3] = -1;
  EXPECT_THROW(model.forward(b, nullptr, LogitsMode::all, logits), ShapeError);
}

}  // namespace
}  // namespace difftx
