// Checks of derived per-layer quantities (lambda) and of negative components that cannot train.
#include "model/diff_checks.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "golden_util.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace difftx {
namespace {

void fill(Model& m, const std::string& name, float value) {
  const ParamSpec& p = m.table().at(name);
  std::fill_n(m.param(name), p.numel, value);
}

TEST(DiffChecks, AnOverflowingLambdaIsFoundAtLoadAndNamed) {
  for (const std::string name : {"diff_double_subln_gqa", "diffllama_gqa"}) {
    Model m = model_load(test::golden_case_load(name).dir);
    EXPECT_EQ(non_finite_lambda(m), "") << name;
    // Every stored value finite, but lambda_q1 · lambda_k1 = 3 * 3 * d > 88.72.
    fill(m, "model.layers.1.self_attn.lambda_q1", 3.0f);
    fill(m, "model.layers.1.self_attn.lambda_k1", 3.0f);
    EXPECT_TRUE(std::isinf(m.layer_lambda(1)));
    const std::string bad = non_finite_lambda(m);
    EXPECT_NE(bad.find("layer 1: lambda = "), std::string::npos) << bad;
    EXPECT_NE(bad.find("is +inf ("), std::string::npos) << bad;
    EXPECT_NE(bad.find(fmt::format("lambda_q1 · lambda_k1 = {} overflows float32 exp", 9 * m.config().head_dim)),
              std::string::npos) << bad;
    EXPECT_NE(bad.find("model.layers.1.self_attn.lambda_q1"), std::string::npos) << bad;
    // Both exponents overflowing gives inf - inf = NaN: named too.
    fill(m, "model.layers.1.self_attn.lambda_q2", 3.0f);
    fill(m, "model.layers.1.self_attn.lambda_k2", 3.0f);
    EXPECT_TRUE(std::isnan(m.layer_lambda(1)));
    EXPECT_NE(non_finite_lambda(m).find("is NaN ("), std::string::npos) << non_finite_lambda(m);

    test::TempDir dir;
    model_save(m, dir.path(), DType::F32);
    try {
      model_load(dir.path());
      ADD_FAILURE() << name << ": a model whose lambda is NaN loaded";
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find("layer 1: lambda"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("every stored tensor is finite"), std::string::npos) << e.what();
    }
  }
}

TEST(DiffChecks, ZeroLambdaVectorsAloneFreezeLambdaAtLambdaInit) {
  Model m = model_load(test::golden_case_load("diff_split_subln_gqa").dir);
  EXPECT_EQ(stuck_negative_component(m), "");
  for (const char* v : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"})
    fill(m, fmt::format("model.layers.0.self_attn.{}", v), 0.0f);
  const std::string stuck = stuck_negative_component(m);
  EXPECT_NE(stuck.find("layers 0: lambda_q1, lambda_k1, lambda_q2 and lambda_k2 are all zero, so their gradients are "
                       "zero and lambda stays lambda_init"),
            std::string::npos) << stuck;
  EXPECT_EQ(stuck.find("negative q_proj"), std::string::npos) << "split mode has no new rows: " << stuck;
  // One pair non-zero: lambda can move again.
  fill(m, "model.layers.0.self_attn.lambda_q2", 0.1f);
  fill(m, "model.layers.0.self_attn.lambda_k2", 0.1f);
  EXPECT_EQ(stuck_negative_component(m), "");
}

}  // namespace
}  // namespace difftx
