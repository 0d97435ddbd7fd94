// Model::keep_bf16_weight_copies (training with bf16 products, the bf16 key): the copies only save
// the rounding of the weights in each product, so on every training golden case the loss and every
// gradient are the same bits as without them; they follow the weights through
// trained_weights_updated() and write_tensor(), and without a refresh they would be stale (the
// test can tell); float32 products ignore them; what cannot have them fails clearly.
#include <gtest/gtest.h>

#include <stdexcept>

#include "golden_util.h"
#include "kernels/cpu/gemm.h"
#include "model/trace.h"

namespace difftx {
namespace {

struct LossAndGrads {
  double loss = 0;
  std::vector<float> grads;
  std::vector<float> logits;
};

LossAndGrads run(const Model& model, const test::GoldenCase& g, const std::vector<int32_t>& targets) {
  LossAndGrads r;
  r.grads.assign(model.trained_weights().size(), 0.0f);
  ForwardTrace trace;
  r.loss = model.loss_and_backward(g.batch, targets, 0.5f, r.grads, trace, g.options());
  model.forward(g.batch, nullptr, LogitsMode::all, r.logits, nullptr, g.options());
  return r;
}

// Every matrix entry moved a little, as an update would.
void nudge_matrices(Model& model) {
  for (const ParamSpec& p : model.table().params())
    if (p.kind == ParamKind::matrix)
      for (uint64_t i = 0; i < p.numel; ++i) model.weights()[p.offset + i] *= 1.0f + 1.0f / 64;
}

class Bf16WeightCopiesTest : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16WeightCopiesTest, SameBitsAsRoundingInEachProduct) {
  if (!gemm_bf16_available()) GTEST_SKIP() << "no native bf16 products on this CPU";
  const test::GoldenCase g = test::golden_case_load(GetParam());
  const std::vector<int32_t> targets = test::next_token_targets(g.dir / "train.json");
  Model plain = test::golden_model_load(g), copies = test::golden_model_load(g);
  plain.place_on(cpu_backend(MathMode::bf16));
  copies.place_on(cpu_backend(MathMode::bf16));
  copies.keep_bf16_weight_copies();
  ASSERT_TRUE(copies.has_bf16_weight_copies());
  EXPECT_FALSE(plain.has_bf16_weight_copies());
  const LossAndGrads a = run(plain, g, targets), b = run(copies, g, targets);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.grads, b.grads);
  EXPECT_EQ(a.logits, b.logits);

  // After the weights change: refreshed copies give the changed model's bits; stale ones do not.
  nudge_matrices(plain);
  nudge_matrices(copies);
  const LossAndGrads stale = run(copies, g, targets), moved = run(plain, g, targets);
  EXPECT_NE(stale.grads, moved.grads) << "the copies are what the products read";
  copies.trained_weights_updated();
  const LossAndGrads refreshed = run(copies, g, targets);
  EXPECT_EQ(refreshed.loss, moved.loss);
  EXPECT_EQ(refreshed.grads, moved.grads);

  // write_tensor keeps a matrix's copy with it.
  const ParamSpec& q = plain.table().at("model.layers.0.self_attn.q_proj.weight");
  std::vector<float> values(q.numel);
  for (uint64_t i = 0; i < q.numel; ++i) values[i] = 0.01f * static_cast<float>(i % 17) - 0.08f;
  plain.write_tensor(q, values.data());
  copies.write_tensor(copies.table().at(q.name), values.data());
  const LossAndGrads written = run(copies, g, targets), expected = run(plain, g, targets);
  EXPECT_EQ(written.grads, expected.grads);
}

INSTANTIATE_TEST_SUITE_P(Cases, Bf16WeightCopiesTest, ::testing::ValuesIn(test::training_case_names()),
                         [](const auto& info) { return info.param; });

// Float32 products (and the embedding lookup) read the float32 matrices beside the copies.
TEST(Bf16WeightCopies, Float32ProductsIgnoreThem) {
  const test::GoldenCase g = test::golden_case_load("diff_double_subln_gqa");
  const std::vector<int32_t> targets = test::next_token_targets(g.dir / "train.json");
  Model plain = test::golden_model_load(g), copies = test::golden_model_load(g);
  copies.keep_bf16_weight_copies();
  const LossAndGrads a = run(plain, g, targets), b = run(copies, g, targets);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.grads, b.grads);
  EXPECT_EQ(a.logits, b.logits);
}

TEST(Bf16WeightCopies, RefusedWhereTheyCannotExist) {
  const test::GoldenCase g = test::golden_case_load("llama_mha");
  Model model = test::golden_model_load(g);
  model.keep_matrices_in_bf16();
  try {
    model.keep_bf16_weight_copies();
    FAIL() << "expected a logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("the matrices are kept in bf16"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(model.has_bf16_weight_copies());
}

}  // namespace
}  // namespace difftx
