// Model::keep_matrices_in_bf16 (inference with the matrices in bfloat16): on every golden case,
// a BF16 checkpoint kept in bf16 gives the independent reference's logits for the BF16-rounded
// weights, with and without the KV cache; on float32 weights it equals rounding the matrices by
// hand; what it no longer allows fails clearly. Parameters start on 64-byte cache lines in both
// forms.
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>

#include "golden_util.h"
#include "io/dtype.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/kv_cache.h"
#include "model/trace.h"

namespace difftx {
namespace {

class Bf16WeightsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16WeightsTest, Bf16CheckpointKeptInBf16MatchesTheReference) {
  test::GoldenCase g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g, /*bf16=*/true);
  const uint64_t f32_bytes = model.weight_bytes();
  model.keep_matrices_in_bf16();
  EXPECT_TRUE(model.matrices_in_bf16());
  EXPECT_LT(model.weight_bytes(), f32_bytes * 6 / 10);
  std::vector<float> logits;
  model.forward(g.batch, nullptr, LogitsMode::all, logits, nullptr, g.options());
  const int64_t V = model.config().vocab_size;
  EXPECT_LE(test::relative_error(g.batch, V, logits, g.logits_bf16), 1e-4);

  if (GetParam() == "llama_rope_dynamic") return;  // its frequencies depend on the length (kv_cache_test)
  // Token by token through the KV cache (gemv_bf16 for every product) equals the full forward.
  const int64_t B = g.batch.batch, T = g.batch.seq_len;
  KVCache cache(model.config(), B, T);
  double max_diff = 0, max_ref = 0;
  std::vector<float> step;
  for (int64_t t = 0; t < T; ++t) {
    TokenBatch s;
    s.batch = B;
    s.seq_len = 1;
    for (int64_t b = 0; b < B; ++b) {
      s.ids.push_back(g.batch.ids[b * T + t]);
      s.position_ids.push_back(g.batch.position_ids[b * T + t]);
      s.attention_mask.push_back(g.batch.attention_mask[b * T + t]);
    }
    model.forward(s, &cache, LogitsMode::last, step, nullptr, g.options());
    for (int64_t b = 0; b < B; ++b) {
      if (g.batch.attention_mask[b * T + t] == 0) continue;
      for (int64_t v = 0; v < V; ++v) {
        max_diff = std::max(max_diff, double(std::abs(step[b * V + v] - logits[(b * T + t) * V + v])));
        max_ref = std::max(max_ref, double(std::abs(logits[(b * T + t) * V + v])));
      }
    }
  }
  EXPECT_LE(max_diff / max_ref, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Cases, Bf16WeightsTest, ::testing::ValuesIn(test::golden_case_names()),
                         [](const auto& info) { return info.param; });

// Float32 weights: keeping the matrices in bf16 equals rounding each matrix entry to bf16 by hand
// (norms and lambdas untouched), and differs from the unrounded model.
TEST(Bf16Weights, EqualsRoundingTheMatricesByHand) {
  for (const std::string name : {"llama_gqa_tied_padded", "diff_double_subln_gqa", "diffllama_gqa"}) {
    test::GoldenCase g = test::golden_case_load(name);
    Model exact = test::golden_model_load(g);
    Model rounded = test::golden_model_load(g);
    for (const ParamSpec& p : rounded.table().params())
      if (p.shape.size() == 2)
        for (uint64_t i = 0; i < p.numel; ++i) {
          float& w = rounded.weights()[p.offset + i];
          w = bf16_to_f32(f32_to_bf16(w));
        }
    Model kept = test::golden_model_load(g);
    kept.keep_matrices_in_bf16();
    const float norm_before = exact.param("model.norm.weight")[3];
    EXPECT_EQ(kept.param("model.norm.weight")[3], norm_before);
    std::vector<float> a, b, c;
    kept.forward(g.batch, nullptr, LogitsMode::all, a, nullptr, g.options());
    rounded.forward(g.batch, nullptr, LogitsMode::all, b, nullptr, g.options());
    exact.forward(g.batch, nullptr, LogitsMode::all, c, nullptr, g.options());
    const int64_t V = kept.config().vocab_size;
    EXPECT_LE(test::relative_error(g.batch, V, a, b), 1e-5) << name;
    EXPECT_GT(test::relative_error(g.batch, V, a, c), 1e-4) << name << ": rounding had no effect";
    // loss() (evaluation) works on the kept model and agrees.
    std::vector<int32_t> targets(g.batch.ids.size(), kIgnoreIndex);
    for (size_t i = 0; i + 1 < targets.size(); ++i) targets[i] = g.batch.ids[i + 1];
    EXPECT_NEAR(kept.loss(g.batch, targets), rounded.loss(g.batch, targets), 1e-4) << name;
  }
}

TEST(Bf16Weights, WhatNeedsFloat32MatricesFailsClearly) {
  test::GoldenCase g = test::golden_case_load("llama_mha");
  Model model = test::golden_model_load(g);
  model.keep_matrices_in_bf16();
  model.keep_matrices_in_bf16();  // a second call changes nothing
  EXPECT_THROW(model.weights(), std::logic_error);
  try {
    model.param("model.layers.0.self_attn.q_proj.weight");
    FAIL() << "expected a logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.self_attn.q_proj.weight: kept in bf16"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(model.param("no.such.tensor"), std::out_of_range);
  std::vector<int32_t> targets(g.batch.ids.size(), kIgnoreIndex);
  std::vector<float> grads(16);
  ForwardTrace trace;
  EXPECT_THROW(model.loss_and_backward(g.batch, targets, 1.0f, grads, trace), std::logic_error);
}

// The kernels read weight rows with 64-byte loads: a buffer that starts off a cache line makes each
// load span two lines (float32 decoding ran at 2/3 speed, bench/NOTES.md change 17).
TEST(Bf16Weights, ParametersStartOnCacheLines) {
  test::GoldenCase g = test::golden_case_load("diff_double_subln_gqa");
  Model model = test::golden_model_load(g);
  auto misaligned = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % 64; };
  for (const ParamSpec& p : model.table().params()) EXPECT_EQ(misaligned(model.param(p.name)), 0u) << p.name;
  model.keep_matrices_in_bf16();
  int checked = 0;
  for (const ParamSpec& p : model.table().params())
    if (p.shape.size() == 1) {  // the float32 ones left (norms, biases)
      EXPECT_EQ(misaligned(model.param(p.name)), 0u) << p.name << " (kept float32)";
      ++checked;
    }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace difftx
