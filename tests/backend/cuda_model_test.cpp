// Whole models on the CUDA backend against the CPU engine: every golden case's logits (f32 and
// bf16 mode), KV-cache decoding against the full forward on the GPU, greedy generation and
// perplexity of the embedded model, and models with head_dim 64 in every layout through the
// tensor-core attention. SKIPPED where there is no CUDA backend.
#include <gtest/gtest.h>

#include <random>

#include "../model/golden_util.h"
#include "backend/backend_test_util.h"
#include "infer/perplexity.h"
#include "infer/generate.h"
#include "model/model_dir.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "test_util.h"

namespace difftx::test {
namespace {

// The model of a golden case, on `backend` (its matrices in bf16 first when bf16).
Model placed(const GoldenCase& g, bool bf16, std::shared_ptr<Backend> backend) {
  Model m = golden_model_load(g, bf16);
  if (bf16) m.keep_matrices_in_bf16();
  m.place_on(std::move(backend));
  return m;
}

class CudaGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGolden, LogitsMatchTheCpuInF32) {
  DIFFTX_REQUIRE_CUDA(gpu, MathMode::f32);
  const GoldenCase g = golden_case_load(GetParam());
  std::vector<float> cpu, cuda;
  golden_model_load(g).forward(g.batch, nullptr, LogitsMode::all, cpu, nullptr, g.options());
  placed(g, false, gpu).forward(g.batch, nullptr, LogitsMode::all, cuda, nullptr, g.options());
  const int64_t V = static_cast<int64_t>(cpu.size()) / (g.batch.batch * g.batch.seq_len);
  EXPECT_LE(relative_error(g.batch, V, cuda, cpu), 1e-4);
  EXPECT_LE(relative_error(g.batch, V, cuda, g.logits), 1e-4) << "against the reference program's logits";
}

TEST_P(CudaGolden, LogitsMatchTheCpuInBf16) {
  DIFFTX_REQUIRE_CUDA(gpu, MathMode::bf16);
  const GoldenCase g = golden_case_load(GetParam());
  std::vector<float> cpu, cuda;
  Model host = golden_model_load(g, true);
  host.keep_matrices_in_bf16();
  host.forward(g.batch, nullptr, LogitsMode::all, cpu, nullptr, g.options());
  placed(g, true, gpu).forward(g.batch, nullptr, LogitsMode::all, cuda, nullptr, g.options());
  const int64_t V = static_cast<int64_t>(cpu.size()) / (g.batch.batch * g.batch.seq_len);
  EXPECT_LE(relative_error(g.batch, V, cuda, cpu), 5e-2) << "bf16 products against the CPU's float32 arithmetic";
}

// Prefill all but the last three positions of the first row, then one token at a time: the
// logits equal the full forward's on the same GPU.
TEST_P(CudaGolden, KVCacheDecodingEqualsTheFullForward) {
  if (GetParam() == "llama_rope_dynamic") GTEST_SKIP() << "dynamic NTK RoPE depends on the current length";
  for (MathMode mode : {MathMode::f32, MathMode::bf16}) {
    DIFFTX_REQUIRE_CUDA(gpu, mode);
    const GoldenCase g = golden_case_load(GetParam());
    Model model = placed(g, mode == MathMode::bf16, gpu);
    const int64_t T = g.batch.seq_len, V = model.config().vocab_size;
    TokenBatch row;
    row.seq_len = T;
    row.ids.assign(g.batch.ids.begin(), g.batch.ids.begin() + T);
    std::vector<float> full, step;
    model.forward(row, nullptr, LogitsMode::all, full);
    KVCache cache(model.config(), 1, T, model.backend());
    TokenBatch head;
    head.seq_len = T - 3;
    head.ids.assign(row.ids.begin(), row.ids.begin() + T - 3);
    model.forward(head, &cache, LogitsMode::last, step);
    std::vector<float> got(step.begin(), step.end()), want(full.begin() + (T - 4) * V, full.begin() + (T - 3) * V);
    for (int64_t t = T - 3; t < T; ++t) {
      TokenBatch one;
      one.seq_len = 1;
      one.ids = {row.ids[t]};
      model.forward(one, &cache, LogitsMode::last, step);
      got.insert(got.end(), step.begin(), step.end());
      want.insert(want.end(), full.begin() + t * V, full.begin() + (t + 1) * V);
    }
    // bf16: the full forward's products round their inputs to bf16 (cuBLASLt), decoding's do not (GEMV).
    expect_close(got, want, mode == MathMode::f32 ? 1e-4 : 5e-2,
                 std::string(mode == MathMode::f32 ? "f32" : "bf16") + " decode vs full forward");
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaGolden, ::testing::ValuesIn(golden_case_names()),
                         [](const auto& info) { return info.param; });

std::filesystem::path embedded_model() { return source_dir() / "examples" / "models" / "wp-llama-12m"; }

TEST(CudaModel, GreedyGenerationOfTheEmbeddedModelMatchesTheCpuInF32) {
  DIFFTX_REQUIRE_CUDA(gpu, MathMode::f32);
  Model cpu = model_load(embedded_model());
  Model cuda = model_load(embedded_model());
  cuda.place_on(gpu);
  const std::vector<int32_t> prompt = {1, 415, 3340, 302, 272, 2245, 28705};
  GenerateOptions o;
  o.max_new_tokens = 40;
  const GenerateResult a = generate(cpu, prompt, o), b = generate(cuda, prompt, o);
  EXPECT_EQ(a.new_ids, b.new_ids);
  o.use_cache = false;  // and the whole sequence re-run each step, on the GPU
  EXPECT_EQ(generate(cuda, prompt, o).new_ids, a.new_ids);
}

TEST(CudaModel, PerplexityOfTheEmbeddedModelMatchesTheCpu) {
  for (MathMode mode : {MathMode::f32, MathMode::bf16}) {
    DIFFTX_REQUIRE_CUDA(gpu, mode);
    Model cpu = model_load(embedded_model());
    Model cuda = model_load(embedded_model());
    if (mode == MathMode::bf16) cuda.keep_matrices_in_bf16();  // exact: the checkpoint is BF16
    cuda.place_on(gpu);
    std::mt19937 rng(7);
    std::vector<int32_t> ids(700);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % cpu.config().vocab_size);
    EvaluateOptions o;
    o.context = 256;
    o.stride = 128;
    const EvaluateResult a = evaluate_perplexity(cpu, ids, o), b = evaluate_perplexity(cuda, ids, o);
    EXPECT_EQ(a.scored, b.scored);
    EXPECT_NEAR(b.mean_loss, a.mean_loss, (mode == MathMode::f32 ? 1e-5 : 1e-2) * a.mean_loss);
  }
}

// head_dim 64 models (random, two layers) in every layout, 100 tokens: the bf16 mode's
// tensor-core attention inside the real forward, against the CPU in float32.
TEST(CudaModel, TensorCoreAttentionInEveryLayout) {
  DIFFTX_REQUIRE_CUDA(gpu, MathMode::bf16);
  struct Layout {
    AttentionLayout layout;
    bool split, subln;
  };
  const Layout layouts[] = {{AttentionLayout::standard, false, false},
                            {AttentionLayout::llama_differential, false, true},
                            {AttentionLayout::llama_differential, true, true},
                            {AttentionLayout::llama_differential, false, false},
                            {AttentionLayout::diffllama, false, false},
                            {AttentionLayout::diff_v1, false, true},
                            {AttentionLayout::diff_v2, false, false}};
  for (const Layout& l : layouts) {
    ModelConfig c;
    c.model_type = "llama";
    c.hidden_size = 256;
    c.intermediate_size = 512;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    c.vocab_size = 300;
    c.max_position_embeddings = 512;
    c.rms_norm_eps = 1e-5;
    c.layout = l.layout;
    c.split_heads = l.split;
    c.sublayer_norm = l.subln;
    Model cpu(c), cuda(c);
    model_init_random(cpu, 11);
    model_init_random(cuda, 11);
    cuda.keep_matrices_in_bf16();
    cuda.place_on(gpu);
    TokenBatch b;
    b.batch = 2;
    b.seq_len = 100;
    std::mt19937 rng(3);
    for (int i = 0; i < 200; ++i) b.ids.push_back(static_cast<int32_t>(rng() % 300));
    std::vector<float> want, got;
    cpu.forward(b, nullptr, LogitsMode::all, want);
    cuda.forward(b, nullptr, LogitsMode::all, got);
    expect_close(got, want, 5e-2,
                 std::string(attention_layout_name(l.layout)) + (l.split ? " split" : "") + (l.subln ? " subln" : ""));
  }
}

}  // namespace
}  // namespace difftx::test
