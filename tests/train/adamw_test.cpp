// Ten AdamW steps (clipping, cosine schedule with warm-up, decoupled weight decay) against the
// PyTorch reference's trajectory: per-step losses within 1e-4 relative; final parameters with at
// most 0.1% of coordinates off by more than 2e-6 and none by more than 5e-4 (float32 vs float64).
// Tensors larger than one piece of work (65536 floats) against a plain double loop, and the same
// bits whatever the thread count.
#include "train/optimizer.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
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
    const double loss = model.loss_and_backward(g.batch, targets, 1.0f / counted, grads, trace, g.options()) / counted;
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
    if (!is_trainable(p.kind)) {
      EXPECT_EQ(*model.param(p.name), *initial.param(p.name)) << p.name;
    }
  }
}

// The kinds reproduce the rule by name that README states (the Hugging Face Trainer's: no decay
// for biases and norm layers, with subln counted as a norm), lambda_init alone is not trained, and
// the matrices kept in bf16 are exactly the rank-2 tensors, on every golden model's table.
TEST(ParamKinds, DecayTrainingAndBf16FollowTheNameRule) {
  for (const std::string& name : test::golden_case_names()) {
    const ParamTable t = llama_param_table(model_config_load(test::golden_dir() / name / "config.json"));
    for (const ParamSpec& p : t.params()) {
      const std::string& n = p.name;
      const bool norm_or_bias = n.ends_with(".bias") || n.find("layernorm") != std::string::npos ||
                                n.ends_with("norm.weight") || n.ends_with("subln.weight");
      EXPECT_EQ(is_trainable(p.kind), !n.ends_with(".lambda_init")) << name << " " << n;
      EXPECT_EQ(weight_decay_applies(p.kind), is_trainable(p.kind) && !norm_or_bias) << name << " " << n;
      EXPECT_EQ(p.kind == ParamKind::matrix, p.shape.size() == 2) << name << " " << n;
    }
  }
}

// A table whose embedding spans several pieces, a norm weight (no decay) and lambda_init (not
// trained): three clipped steps against a double-precision loop written from the formulas.
TEST(AdamW, LargeTensorsFollowThePlainFormulasAndRepeatOverThreadCounts) {
  ParamTable table;
  table.add("model.embed_tokens.weight", {301, 700}, ParamInit::normal);  // 210,700 floats: 4 pieces
  table.add("model.norm.weight", {700}, ParamInit::ones);
  table.add("model.layers.0.self_attn.lambda_init", {}, ParamInit::lambda_init, 0);
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> start(table.buffer_floats()), grad0(start.size());
  for (float& x : start) x = dist(rng);
  for (float& x : grad0) x = 0.01f * dist(rng);
  AdamWOptions o;
  o.weight_decay = 0.1;
  const double max_norm = 1.0, lr = 1e-2;

  auto run = [&](int threads, std::vector<float>& params, std::vector<double>& norms) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    params = start;
    AdamW opt(table, o);
    for (int s = 0; s < 3; ++s) {
      std::vector<float> grads = grad0;
      for (size_t i = 0; i < grads.size(); ++i) grads[i] *= static_cast<float>(s + 1);
      norms.push_back(clip_grad_norm(table, grads, max_norm));
      EXPECT_TRUE(opt.step(params, grads, lr)) << "every updated value is finite";
    }
    omp_set_num_threads(before);
  };
  std::vector<float> one, two;
  std::vector<double> norms_one, norms_two;
  run(1, one, norms_one);
  run(2, two, norms_two);
  EXPECT_EQ(norms_one, norms_two);
  EXPECT_EQ(one, two);

  // The reference, in double.
  std::vector<double> x(start.begin(), start.end()), m(x.size(), 0.0), v(x.size(), 0.0);
  for (int s = 0; s < 3; ++s) {
    std::vector<double> g(grad0.begin(), grad0.end());
    double sq = 0;
    for (const ParamSpec& p : table.params())
      if (is_trainable(p.kind))
        for (uint64_t j = 0; j < p.numel; ++j) {
          g[p.offset + j] *= s + 1;
          sq += g[p.offset + j] * g[p.offset + j];
        }
    const double norm = std::sqrt(sq), coef = std::min(1.0, max_norm / (norm + 1e-6));
    EXPECT_NEAR(norms_one[static_cast<size_t>(s)], norm, 1e-9 * norm) << "step " << s;
    const double bias1 = 1 - std::pow(o.beta1, s + 1), bias2 = 1 - std::pow(o.beta2, s + 1);
    for (const ParamSpec& p : table.params()) {
      if (!is_trainable(p.kind)) continue;
      const double decay = weight_decay_applies(p.kind) ? lr * o.weight_decay : 0.0;
      for (uint64_t j = p.offset; j < p.offset + p.numel; ++j) {
        const double gj = g[j] * coef;
        x[j] -= decay * x[j];
        m[j] = o.beta1 * m[j] + (1 - o.beta1) * gj;
        v[j] = o.beta2 * v[j] + (1 - o.beta2) * gj * gj;
        x[j] -= lr * (m[j] / bias1) / (std::sqrt(v[j] / bias2) + o.epsilon);
      }
    }
  }
  double worst = 0;
  for (const ParamSpec& p : table.params())
    for (uint64_t j = p.offset; j < p.offset + p.numel; ++j) worst = std::max(worst, std::abs(one[j] - x[j]));
  EXPECT_LE(worst, 2e-6);
  const uint64_t lambda_init = table.at("model.layers.0.self_attn.lambda_init").offset;
  EXPECT_EQ(one[lambda_init], start[lambda_init]);
}

// step() says whether what it wrote is finite (the trainer's divergence check relies on it): an
// update that overflows one element, in the last piece of a tensor or in the middle of another,
// is reported; the same state with a finite update is not.
TEST(AdamW, StepReportsANonFiniteUpdate) {
  ParamTable table;
  table.add("model.embed_tokens.weight", {301, 700}, ParamInit::normal);
  table.add("model.norm.weight", {700}, ParamInit::ones);
  for (const uint64_t at : {uint64_t{210699}, uint64_t{70000}, table.at("model.norm.weight").offset + 3}) {
    std::vector<float> params(table.buffer_floats(), 1.0f), grads(params.size(), 0.5f);
    params[at] = -3.4e38f;  // moves by about -lr (1e37): past the largest float
    AdamW opt(table, AdamWOptions{});
    EXPECT_FALSE(opt.step(params, grads, 1.0e37)) << at;
    EXPECT_TRUE(std::isfinite(params[at == 70000 ? 0 : 70000])) << "the others stay finite";
    EXPECT_TRUE(std::isinf(params[at])) << at;
    std::vector<float> again(params.size(), 1.0f);
    again[at] = -3.4e38f;
    AdamW fresh(table, AdamWOptions{});
    EXPECT_TRUE(fresh.step(again, grads, 1e-3)) << at;
    EXPECT_TRUE(std::isfinite(again[at])) << at;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, AdamWTest, ::testing::ValuesIn(test::training_case_names()),
                         [](const auto& info) { return info.param; });

TEST(WeightDecayRule, MatchesTheReferenceLists) {
  for (const auto& name : test::training_case_names()) {
    auto train = json_read_file(test::golden_dir() / name / "train.json");
    const ParamTable table = llama_param_table(model_config_load(test::golden_dir() / name / "config.json"));
    std::set<std::string> no_decay;
    for (const auto& n : train["no_decay"]) no_decay.insert(n.get<std::string>());
    for (const auto& n : train["trainable"]) {
      const ParamSpec& p = table.at(n.get<std::string>());
      EXPECT_TRUE(is_trainable(p.kind)) << n;
      EXPECT_EQ(weight_decay_applies(p.kind), !no_decay.count(n.get<std::string>())) << n;
    }
  }
  EXPECT_FALSE(is_trainable(ParamKind::constant));     // lambda_init
  EXPECT_FALSE(weight_decay_applies(ParamKind::norm));  // subln among them
  EXPECT_TRUE(weight_decay_applies(ParamKind::lambda));
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
