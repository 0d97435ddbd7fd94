// LoRA training (model/lora.h: lora_train_table, Model::train_lora): the gradients of every golden
// case's adapter and whole-trained tensors against the independent reference
// (tools/reference/lora_ref.py: float64 autograd through W + scaling * B A), the dropout masks,
// and the rules of the trained table.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "golden_util.h"
#include "test_util.h"
#include "common/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "common/bf16.h"
#include "model/lora.h"
#include "model/model_dir.h"
#include "model/trace.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> lora_case_names() { return test::golden_cases_with("lora/grads.safetensors"); }

// The golden adapter as a training start: its modules, and (as the reference does) the
// differential parameters trained whole unless an adapter targets diff-v2's lambda_proj.
LoraTrainSpec golden_spec(const LoraAdapter& adapter) {
  LoraTrainSpec spec;
  spec.config = adapter.config;
  spec.config.target_modules.clear();
  for (const LoraModule& m : adapter.modules) {
    spec.config.target_modules.push_back(m.module);
    if (m.role == MatrixRole::lambda_proj) spec.train_diff_params = false;
  }
  return spec;
}

struct Trained {
  Model model;
  std::vector<int32_t> targets;
  int64_t counted = 0;
};

Trained start(const test::GoldenCase& g, double dropout = 0, std::optional<Model> model = std::nullopt) {
  Trained t{model ? std::move(*model) : test::golden_model_load(g), test::next_token_targets(g.dir / "train.json")};
  const LoraAdapter adapter = lora_load(g.dir / "lora", t.model);
  LoraTrainSpec spec = golden_spec(adapter);
  spec.config.lora_dropout = dropout;
  ParamTable table = lora_train_table(t.model, spec);
  AlignedVector<float> values = lora_train_values(t.model, table, 7, &adapter);
  t.model.train_lora(std::move(table), std::move(values), spec.config);
  for (int32_t id : t.targets) t.counted += id != kIgnoreIndex;
  return t;
}

std::vector<float> gradients(Trained& t, const test::GoldenCase& g, ForwardOptions options, double* loss = nullptr) {
  std::vector<float> grads(t.model.trained_weights().size(), 0.0f);
  ForwardTrace trace;
  const double l = t.model.loss_and_backward(g.batch, t.targets, 1.0f / static_cast<float>(t.counted), grads, trace,
                                             options);
  if (loss) *loss = l / static_cast<double>(t.counted);
  return grads;
}

class LoraTrainGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraTrainGoldenTest, GradientsMatchReference) {
  const test::GoldenCase g = test::golden_case_load(GetParam());
  Trained t = start(g);
  double loss = 0;
  const std::vector<float> grads = gradients(t, g, g.options(), &loss);
  SafetensorsFile ref(g.dir / "lora" / "grads.safetensors");
  std::vector<float> ref_loss(1);
  ref.load_f32(*ref.find("loss"), ref_loss.data());
  EXPECT_NEAR(loss, ref_loss[0], 1e-4 * std::abs(ref_loss[0]));
  const ParamTable& table = t.model.trained_table();
  EXPECT_EQ(table.params().size() + 1, ref.tensors().size()) << "the reference trains the same tensors";
  double worst = 0;
  std::string worst_name;
  int64_t adapters = 0;
  for (const ParamSpec& p : table.params()) {
    const TensorInfo* r = ref.find(p.name);
    ASSERT_NE(r, nullptr) << p.name;
    ASSERT_EQ(r->shape, p.shape) << p.name;
    std::vector<float> expected(r->numel());
    ref.load_f32(*r, expected.data());
    double max_diff = 0, max_ref = 1e-30;
    for (uint64_t i = 0; i < p.numel; ++i) {
      max_diff = std::max(max_diff, std::abs(double(grads[p.offset + i]) - expected[i]));
      max_ref = std::max(max_ref, std::abs(double(expected[i])));
    }
    // Lambda vectors: one cancelling scalar times the re-parameterisation (gradient_test.cpp).
    const bool lambda_vector = p.name.find(".lambda_q") != std::string::npos || p.name.find(".lambda_k") != std::string::npos;
    EXPECT_LE(max_diff / max_ref, lambda_vector ? 5e-4 : 1e-4) << p.name << " max|ref| " << max_ref;
    EXPECT_GT(max_ref, 1e-12) << p.name << ": a gradient that is zero tests nothing";
    adapters += p.kind == ParamKind::adapter;
    if (max_diff / max_ref > worst) {
      worst = max_diff / max_ref;
      worst_name = p.name;
    }
  }
  EXPECT_GE(adapters, 4);
  std::printf("[ lora grads ] %-26s loss %.6f (ref %.6f), %zu tensors, worst %.2g (%s)\n", GetParam().c_str(), loss,
              ref_loss[0], table.params().size(), worst, worst_name.c_str());
}

// Dropout draws its masks from (seed, layer, module, element): the backward draws the forward's
// again, so recomputing activations changes no bit, the same seed gives the same gradients and
// another seed other ones.
TEST_P(LoraTrainGoldenTest, DropoutMasksAreDrawnAgainInTheBackward) {
  const test::GoldenCase g = test::golden_case_load(GetParam());
  Trained t = start(g, 0.3);
  ForwardOptions o = g.options();
  const std::vector<float> plain = gradients(t, g, o);
  o.lora_dropout_seed = 11;
  const std::vector<float> dropped = gradients(t, g, o);
  EXPECT_EQ(gradients(t, g, o), dropped);
  o.recompute_activations = true;
  EXPECT_EQ(gradients(t, g, o), dropped) << "recomputed activations";
  o.recompute_activations = false;
  EXPECT_NE(dropped, plain);
  o.lora_dropout_seed = 12;
  EXPECT_NE(gradients(t, g, o), dropped);
}

// Frozen matrices kept in bf16 (read straight into bf16: Model(config, true)): the same gradients
// as the float32 copy of the same bf16 weights (float32 arithmetic on widened blocks; only the
// order of the sums differs).
TEST_P(LoraTrainGoldenTest, Bf16FrozenMatricesGiveTheFloat32Gradients) {
  const test::GoldenCase g = test::golden_case_load(GetParam());
  Trained f32 = start(g, 0, test::golden_model_load(g, /*bf16=*/true));
  Trained bf16 = start(g, 0, ModelDir(g.dir / "bf16").load(/*matrices_in_bf16=*/true));
  ASSERT_TRUE(bf16.model.matrices_in_bf16());
  // A matrix trained whole (llama_mha's lm_head in modules_to_save) keeps float32 master values in
  // the trained table; the bf16 model computes with their bf16 rounding, so only the write-back is
  // compared below.
  const ParamSpec* head = bf16.model.trained_table().find("lm_head.weight");
  double l32 = 0, l16 = 0;
  const std::vector<float> a = gradients(f32, g, g.options(), &l32), b = gradients(bf16, g, g.options(), &l16);
  if (head == nullptr) {
    EXPECT_NEAR(l16, l32, 1e-5 * std::abs(l32));
  }
  for (const ParamSpec& p : f32.model.trained_table().params()) {
    if (head != nullptr) break;
    double max_diff = 0, max_ref = 1e-30;
    for (uint64_t i = 0; i < p.numel; ++i) {
      max_diff = std::max(max_diff, std::abs(double(a[p.offset + i]) - b[p.offset + i]));
      max_ref = std::max(max_ref, std::abs(double(a[p.offset + i])));
    }
    EXPECT_LE(max_diff / max_ref, 1e-4) << p.name;
  }
  // The update reaches the bf16 copy of a whole-trained matrix (llama_mha's lm_head).
  if (head != nullptr) {
    std::span<float> w = bf16.model.trained_weights();
    w[head->offset] += 1.0f;
    bf16.model.trained_weights_updated();
    std::vector<float> back(head->numel);
    bf16.model.read_tensor(bf16.model.table().at("lm_head.weight"), back.data());
    EXPECT_EQ(back[0], bf16_to_f32(f32_to_bf16(w[head->offset])));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, LoraTrainGoldenTest, ::testing::ValuesIn(lora_case_names()),
                         [](const auto& info) { return info.param; });

TEST(LoraTrainGolden, CasesCoverEveryLayout) { EXPECT_EQ(lora_case_names().size(), 9u); }

TEST(LoraDropout, KeepsOneMinusPScaledAndRepeatsPerKey) {
  const int64_t n = 200000;
  std::vector<float> x(n, 1.0f), a(n), b(n), c(n);
  lora_dropout(x.data(), n, 0.25, 99, a.data());
  lora_dropout(x.data(), n, 0.25, 99, b.data());
  lora_dropout(x.data(), n, 0.25, 100, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  int64_t kept = 0;
  for (float v : a) {
    EXPECT_TRUE(v == 0.0f || v == static_cast<float>(1.0 / 0.75)) << v;
    kept += v != 0.0f;
  }
  // Binomial(200000, 0.75): standard deviation 194; 6 of them.
  EXPECT_NEAR(static_cast<double>(kept), 0.75 * n, 1200.0);
  EXPECT_NE(lora_dropout_key(5, 0, MatrixRole::q_proj), lora_dropout_key(5, 0, MatrixRole::k_proj));
  EXPECT_NE(lora_dropout_key(5, 0, MatrixRole::q_proj), lora_dropout_key(5, 1, MatrixRole::q_proj));
}

TEST(LoraTrainTable, TargetsWholeTensorsAndErrors) {
  const test::GoldenCase v2 = test::golden_case_load("diff_v2_gqa_tied_padded");
  const Model model = test::golden_model_load(v2);
  const int64_t L = model.config().num_hidden_layers;
  LoraTrainSpec spec;
  spec.config.r = 2;
  spec.config.target_modules = {"all-linear"};
  const ParamTable all = lora_train_table(model, spec);
  // all-linear adapts the seven Linear layers; lambda_proj trains whole.
  EXPECT_EQ(all.params().size(), static_cast<size_t>(L * (7 * 2 + 1)));
  EXPECT_NE(all.find("model.layers.0.self_attn.lambda_proj.weight"), nullptr);
  EXPECT_EQ(all.find("model.layers.0.self_attn.lambda_proj.lora_A.weight"), nullptr);
  EXPECT_EQ(all.at("model.layers.0.self_attn.q_proj.lora_A.weight").kind, ParamKind::adapter);
  EXPECT_EQ(all.at("model.layers.0.self_attn.q_proj.lora_B.weight").shape[1], 2);
  spec.train_diff_params = false;
  EXPECT_EQ(lora_train_table(model, spec).params().size(), static_cast<size_t>(L * 8 * 2));
  // modules_to_save as PEFT matches it: "q_proj" is every layer's q_proj, trained whole and not adapted.
  spec.config.modules_to_save = {"q_proj"};
  const ParamTable saved = lora_train_table(model, spec);
  EXPECT_EQ(saved.params().size(), static_cast<size_t>(L * 7 * 2 + L));
  EXPECT_NE(saved.find("model.layers.1.self_attn.q_proj.weight"), nullptr);
  EXPECT_EQ(saved.find("model.layers.1.self_attn.q_proj.lora_A.weight"), nullptr);
  spec.config.modules_to_save = {};

  auto refused = [&](LoraTrainSpec s, const std::string& needle) {
    try {
      lora_train_table(model, s);
      ADD_FAILURE() << "accepted; expected an error with " << needle;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  LoraTrainSpec s = spec;
  s.train_diff_params = true;
  s.config.target_modules = {"lambda_proj"};
  refused(s, "lora_train_diff_params: false");
  s.config.target_modules = {"q_proj", "qkv_proj"};
  refused(s, "\"qkv_proj\" matches no Linear");
  s.config.target_modules = {};
  refused(s, "no target modules");
  s.config.target_modules = {"q_proj"};
  s.config.modules_to_save = {"lm_head"};
  refused(s, "tie_word_embeddings");  // this case ties lm_head to the embedding
  s.config.modules_to_save = {"no_such_module"};
  refused(s, "names no tensor");
  s.config.modules_to_save = {};
  s.config.r = 0;
  refused(s, "lora_r must be at least 1");
}

}  // namespace
}  // namespace difftx
