// Golden parity: the C++ forward pass against the independent PyTorch reference (tools/reference)
// on every case of tests/golden, float32 and BF16 checkpoints. Bound: max|diff| / max|ref| <= 1e-4.
#include <gtest/gtest.h>

#include "kernels/backend.h"

#include <cstdio>

#include "golden_util.h"
#include "model/model_dir.h"

namespace difftx {
namespace {

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, Float32LogitsMatchReference) {
  auto g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g);
  std::vector<float> logits;
  model.forward(g.batch, nullptr, LogitsMode::all, logits, nullptr, g.options());
  ASSERT_EQ(logits.size(), g.logits.size());
  double err = test::relative_error(g.batch, model.config().vocab_size, logits, g.logits);
  std::printf("[ golden   ] %-28s f32  max|diff|/max|ref| = %.3g\n", GetParam().c_str(), err);
  RecordProperty("relative_error", std::to_string(err));
  EXPECT_LE(err, 1e-4);
}

TEST_P(GoldenTest, Bf16CheckpointMatchesBf16RoundedReference) {
  auto g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g, /*bf16=*/true);
  std::vector<float> logits;
  model.forward(g.batch, nullptr, LogitsMode::all, logits, nullptr, g.options());
  double err = test::relative_error(g.batch, model.config().vocab_size, logits, g.logits_bf16);
  std::printf("[ golden   ] %-28s bf16 max|diff|/max|ref| = %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, 1e-4);
  // And it is a different function from the float32 one: the test can tell them apart.
  EXPECT_GT(test::relative_error(g.batch, model.config().vocab_size, logits, g.logits), 1e-4);
}

// --compute-dtype bf16 (MathMode::bf16 on the CPU): bf16 products with float32 sums stay within
// a bf16 tolerance of the float32 reference, the GPU's bf16 bound (5e-2 of the largest logit);
// skipped where the CPU has no native bf16 products.
TEST_P(GoldenTest, Bf16ProductsStayNearTheFloat32Reference) {
  if (!cpu_has_native_bf16()) GTEST_SKIP() << "no native bf16 products on this CPU";
  auto g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g);
  model.place_on(cpu_backend(MathMode::bf16));
  std::vector<float> logits;
  model.forward(g.batch, nullptr, LogitsMode::all, logits, nullptr, g.options());
  const double err = test::relative_error(g.batch, model.config().vocab_size, logits, g.logits);
  std::printf("[ golden   ] %-28s bf16 products max|diff|/max|ref| = %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, 5e-2);
  EXPECT_GT(err, 1e-4) << "bf16 products should round differently from float32";
}

TEST_P(GoldenTest, LastPositionModeEqualsAllPositions) {
  auto g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g);
  std::vector<float> all, last;
  model.forward(g.batch, nullptr, LogitsMode::all, all, nullptr, g.options());
  model.forward(g.batch, nullptr, LogitsMode::last, last, nullptr, g.options());
  const int64_t V = model.config().vocab_size, T = g.batch.seq_len;
  ASSERT_EQ(last.size(), size_t(g.batch.batch * V));
  // Equal up to float32 summation order (the lm_head GEMM runs on 1 row instead of T).
  for (int64_t b = 0; b < g.batch.batch; ++b)
    for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(last[b * V + v], all[(b * T + T - 1) * V + v], 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenTest, ::testing::ValuesIn(test::golden_case_names()),
                         [](const auto& info) { return info.param; });

TEST(Golden, AllCasesPresent) {
  auto names = test::golden_case_names();
  for (const char* required : {"llama_mha", "llama_gqa_tied_padded", "llama_bias", "llama_rope_llama3", "llama_rope_yarn",
                               "llama_rope_linear_legacy", "llama_rope_dynamic", "llama_head_dim", "mistral_sliding",
                               "qwen2_bias", "qwen3_qknorm"})
    EXPECT_NE(std::find(names.begin(), names.end(), required), names.end()) << required;
}

}  // namespace
}  // namespace difftx
