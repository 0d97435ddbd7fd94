// Ten AdamW steps (clipping, cosine schedule with warm-up, decoupled weight decay) against the
// PyTorch reference's trajectory: per-step losses within 1e-4 relative; final parameters with at
// most 0.1% of coordinates off by more than 2e-6 and none by more than 5e-4 (float32 vs float64).
#include "train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "../model/golden_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/trace.h"
#include "test_util.h"

namespace difftx {
namespace {

class AdamWTest : public ::testing::TestWithParam<std::string> {};

TEST_P(AdamWTest, TenStepsFollowTheReference) {
  auto g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g);
  auto train = json_read_file(g.dir / "train.json");
  const auto& hp = train["hyperparameters"];
  const std::vector<int32_t> targets = test::next_token_targets(g.dir / "train.json");
  const int64_t counted = train["num_targets"].get<int64_t>();

  AdamWOptions o;
  o.learning_rate = hp["learning_rate"];
  o.beta1 = hp["adam_beta1"];
  o.beta2 = hp["adam_beta2"];
  o.epsilon = hp["adam_epsilon"];
  o.weight_decay = hp["weight_decay"];
  AdamW opt(model.table(), o);
  const int64_t steps = hp["max_steps"], warmup = hp["warmup_steps"];
  std::vector<float> grads(model.weights().size());
  ForwardTrace trace;
  for (int64_t s = 0; s < steps; ++s) {
    std::fill(grads.begin(), grads.end(), 0.0f);
    const double loss = model.loss_and_backward(g.batch, targets, 1.0f / counted, grads, trace) / counted;
    const double norm = clip_grad_norm(model.table(), grads, hp["max_grad_norm"]);
    const double lr = o.learning_rate * lr_multiplier(LrSchedule::cosine, s, warmup, steps);
    EXPECT_NEAR(loss, train["losses"][s].get<double>(), 1e-4 * train["losses"][s].get<double>()) << "step " << s;
    EXPECT_NEAR(norm, train["grad_norms"][s].get<double>(), 1e-4 * train["grad_norms"][s].get<double>()) << s;
    EXPECT_NEAR(lr, train["lrs"][s].get<double>(), 1e-12) << s;
    opt.step(model.weights(), grads, lr);
  }
  SafetensorsFile final_ref(g.dir / "adamw_final.safetensors");
  int64_t beyond_small = 0, total = 0;
  double worst = 0;
  for (const auto& name : train["trainable"]) {
    const TensorInfo* t = final_ref.find(name.get<std::string>());
    std::vector<float> expected(t->numel());
    final_ref.load_f32(*t, expected.data());
    const float* got = model.param(name.get<std::string>());
    for (size_t i = 0; i < expected.size(); ++i) {
      const double diff = std::abs(double(got[i]) - expected[i]);
      worst = std::max(worst, diff);
      beyond_small += diff > 2e-6;
      ++total;
    }
  }
  std::printf("[ adamw    ] %-28s worst |diff| %.2g, %.3f%% of coordinates beyond 2e-6\n", GetParam().c_str(), worst,
              100.0 * beyond_small / total);
  EXPECT_LE(worst, 5e-4);
  EXPECT_LE(beyond_small, total / 1000 + 1);
  // lambda_init never moves.
  Model initial = test::golden_model_load(g);
  for (const auto& p : model.table().params()) {
    if (!is_trainable(p.name)) {
      EXPECT_EQ(*model.param(p.name), *initial.param(p.name)) << p.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, AdamWTest, ::testing::ValuesIn(test::training_case_names()),
                         [](const auto& info) { return info.param; });

TEST(WeightDecayRule, MatchesTheReferenceLists) {
  for (const auto& name : test::training_case_names()) {
    auto train = json_read_file(test::golden_dir() / name / "train.json");
    std::set<std::string> no_decay;
    for (const auto& n : train["no_decay"]) no_decay.insert(n.get<std::string>());
    for (const auto& n : train["trainable"]) {
      EXPECT_TRUE(is_trainable(n.get<std::string>()));
      EXPECT_EQ(weight_decay_applies(n.get<std::string>()), !no_decay.count(n.get<std::string>())) << n;
    }
  }
  EXPECT_FALSE(is_trainable("model.layers.3.self_attn.lambda_init"));
  EXPECT_FALSE(weight_decay_applies("model.layers.0.self_attn.subln.weight"));
  EXPECT_TRUE(weight_decay_applies("model.layers.0.self_attn.lambda_q1"));
}

TEST(LrSchedule, TransformersFormulas) {
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::linear, 0, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::linear, 5, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::linear, 60, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::linear, 110, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::cosine, 60, 10, 110), 0.5);
  EXPECT_NEAR(lr_multiplier(LrSchedule::cosine, 110, 10, 110), 0.0, 1e-15);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::constant, 3, 10, 110), 0.3);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::constant, 50, 10, 110), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(LrSchedule::cosine, 0, 0, 10), 1.0);
}

}  // namespace
}  // namespace difftx
