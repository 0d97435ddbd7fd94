#include "model/init.h"

#include <gtest/gtest.h>

#include <cmath>

#include "io/json_file.h"
#include "test_util.h"

namespace difftx {
namespace {

ModelConfig small_config(bool tied) {
  auto j = ordered_json::parse(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 160,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
    "initializer_range": 0.05, "pad_token_id": 7})");
  j["tie_word_embeddings"] = tied;
  return model_config_parse(j, "config.json");
}

TEST(Init, FollowsTransformersInitRules) {
  Model m(small_config(false));
  model_init_random(m, 1234);
  for (const auto& p : m.table().params()) {
    const float* x = m.weights().data() + p.offset;
    if (p.init == ParamInit::ones) {
      for (uint64_t i = 0; i < p.numel; ++i) ASSERT_EQ(x[i], 1.0f) << p.name;
    } else if (p.init == ParamInit::normal) {
      double sum = 0, sq = 0;
      for (uint64_t i = 0; i < p.numel; ++i) {
        sum += x[i];
        sq += double(x[i]) * x[i];
      }
      double mean = sum / p.numel, sd = std::sqrt(sq / p.numel - mean * mean);
      EXPECT_NEAR(mean, 0.0, 5 * 0.05 / std::sqrt(double(p.numel))) << p.name;
      EXPECT_NEAR(sd, 0.05, 0.05 * 0.1) << p.name;
    }
  }
  const float* pad_row = m.param("model.embed_tokens.weight") + 7 * 64;
  for (int i = 0; i < 64; ++i) EXPECT_EQ(pad_row[i], 0.0f);
}

TEST(Init, DeterministicPerSeed) {
  Model a(small_config(true)), b(small_config(true)), c(small_config(true));
  model_init_random(a, 1);
  model_init_random(b, 1);
  model_init_random(c, 2);
  EXPECT_TRUE(std::equal(a.weights().begin(), a.weights().end(), b.weights().begin()));
  EXPECT_FALSE(std::equal(a.weights().begin(), a.weights().end(), c.weights().begin()));
  // Different parameters get different streams.
  const float* q0 = a.param("model.layers.0.self_attn.q_proj.weight");
  const float* q1 = a.param("model.layers.1.self_attn.q_proj.weight");
  EXPECT_NE(q0[0], q1[0]);
}

TEST(Init, SmolLM2ShapeHasTheKnownParameterCount) {
  ModelConfig c = model_config_load(test::source_dir() / "examples" / "smollm2-135m" / "config.json");
  ParamTable t = llama_param_table(c);
  EXPECT_EQ(t.parameter_count(), 134'515'008u);  // SmolLM2-135M as published (tied embeddings)
  EXPECT_EQ(t.find("lm_head.weight"), nullptr);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_key_value_heads, 3);
}

}  // namespace
}  // namespace difftx
