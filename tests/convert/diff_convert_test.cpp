// Conversion to differential attention (spec §5) on the golden base models of every family.
#include "convert/diff_convert.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "../model/golden_util.h"
#include "common/error.h"
#include "model/model_dir.h"
#include "model/diff_checks.h"
#include "model/kv_cache.h"
#include "model/trace.h"
#include "test_util.h"

namespace difftx {
namespace {

const std::vector<std::string> kBases = {"llama_mha", "llama_gqa_tied_padded", "llama_bias", "llama_rope_llama3",
                                         "mistral_sliding", "qwen2_bias", "qwen3_qknorm"};

std::vector<float> logits_of(const Model& m, const TokenBatch& b) {
  std::vector<float> out;
  m.forward(b, nullptr, LogitsMode::all, out);
  return out;
}

ConvertOptions options(bool zero_init, bool sublayer_norm, bool split = false, bool mirror = false,
                       AttentionLayout layout = AttentionLayout::llama_differential) {
  ConvertOptions o;
  o.zero_init = zero_init;
  o.sublayer_norm = sublayer_norm;
  o.split_heads = split;
  o.mirror_weights = mirror;
  o.layout = layout;
  o.seed = 7;
  return o;
}

class ConvertTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    g = test::golden_case_load(GetParam());
    base = std::make_unique<Model>(model_load(g.dir));
    base_logits = logits_of(*base, g.batch);
  }
  double diff_from_base(const Model& m) { return test::relative_error(g.batch, base->config().vocab_size, logits_of(m, g.batch), base_logits); }
  test::GoldenCase g;
  std::unique_ptr<Model> base;
  std::vector<float> base_logits;
};

TEST_P(ConvertTest, ZeroInitWithoutSublayerNormComputesTheBaseModel) {
  Model m = convert_model(*base, options(true, false));
  double err = diff_from_base(m);
  std::printf("[ convert  ] %-24s zero-init, no subln: max|diff|/max|ref| = %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, 1e-6);
  for (int64_t l = 0; l < m.config().num_hidden_layers; ++l) {
    EXPECT_EQ(*m.param(fmt::format("model.layers.{}.self_attn.lambda_init", l)), 0.0f);
    EXPECT_EQ(m.layer_lambda(l), 0.0f);
  }
}

ConvertOptions identity_options() {
  ConvertOptions o = options(false, false);
  o.init = ConvertInit::identity;
  return o;
}

// spec §9: lambda_q2 = lambda_q1, lambda_k2 = lambda_k1 and lambda_init 0 make lambda exactly 0,
// so A1 alone remains: the base model's attention, for every base family.
TEST_P(ConvertTest, IdentityInitComputesTheBaseModel) {
  Model m = convert_model(*base, identity_options());
  const double err = diff_from_base(m);
  std::printf("[ convert  ] %-24s init identity: max|diff|/max|ref| = %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, 1e-6);
  const int64_t d = m.config().head_dim;
  for (int64_t l = 0; l < m.config().num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.self_attn.", l);
    EXPECT_EQ(m.layer_lambda(l), 0.0f);
    EXPECT_TRUE(std::equal(m.param(p + "lambda_q1"), m.param(p + "lambda_q1") + d, m.param(p + "lambda_q2")));
    EXPECT_TRUE(std::equal(m.param(p + "lambda_k1"), m.param(p + "lambda_k1") + d, m.param(p + "lambda_k2")));
    EXPECT_GT(std::abs(m.param(p + "lambda_q1")[0]), 0.0f) << "the lambda vectors are drawn, not zero";
  }
}

// diff-v1 (spec §7) regroups the base's heads: every Llama tensor is copied, the function changes.
TEST_P(ConvertTest, DiffV1KeepsEveryBaseTensor) {
  const ModelConfig& bc = base->config();
  if (bc.num_attention_heads % 2 || bc.num_key_value_heads % 2) GTEST_SKIP() << "odd head count";
  Model m = convert_model(*base, options(false, true, false, false, AttentionLayout::diff_v1));
  EXPECT_EQ(m.config().layout, AttentionLayout::diff_v1);
  for (const ParamSpec& p : base->table().params())
    EXPECT_TRUE(std::equal(base->param(p.name), base->param(p.name) + p.numel, m.param(p.name))) << p.name;
  const float* subln = m.param("model.layers.0.self_attn.subln.weight");
  EXPECT_TRUE(std::all_of(subln, subln + 2 * bc.head_dim, [](float x) { return x == 1.0f; }));
  EXPECT_GT(diff_from_base(m), 1e-3);
}

// diff-v2's identity conversion (spec §9): query heads 2i and 2i+1 both the base's head i,
// lambda_proj 0 (lambda = 1/2), o_proj doubled: out_i = A_i V / 2, doubled back.
TEST_P(ConvertTest, DiffV2IdentityInitComputesTheBaseModel) {
  ConvertOptions o = options(false, true, false, false, AttentionLayout::diff_v2);
  o.init = ConvertInit::identity;
  Model m = convert_model(*base, o);
  const double err = diff_from_base(m);
  std::printf("[ convert  ] %-24s diff-v2 init identity: max|diff|/max|ref| = %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, 1e-6);
  const ModelConfig& bc = base->config();
  const int64_t D = bc.hidden_size, d = bc.head_dim, H = bc.num_attention_heads;
  const float* bq = base->param("model.layers.0.self_attn.q_proj.weight");
  const float* q = m.param("model.layers.0.self_attn.q_proj.weight");
  for (int64_t i = 0; i < H; ++i) {
    EXPECT_TRUE(std::equal(bq + i * d * D, bq + (i + 1) * d * D, q + 2 * i * d * D)) << "head " << 2 * i;
    EXPECT_TRUE(std::equal(bq + i * d * D, bq + (i + 1) * d * D, q + (2 * i + 1) * d * D)) << "head " << 2 * i + 1;
  }
  const float* lp = m.param("model.layers.1.self_attn.lambda_proj.weight");
  EXPECT_TRUE(std::all_of(lp, lp + H * D, [](float x) { return x == 0.0f; }));
  EXPECT_EQ(m.param("model.layers.1.self_attn.o_proj.weight")[3], 2.0f * base->param("model.layers.1.self_attn.o_proj.weight")[3]);
}

// diff-v2's default conversion: head 2i is the base's head i, head 2i+1 and lambda_proj are new.
TEST_P(ConvertTest, DiffV2DefaultKeepsThePositiveHeads) {
  Model m = convert_model(*base, options(false, true, false, false, AttentionLayout::diff_v2));
  const ModelConfig& bc = base->config();
  const int64_t D = bc.hidden_size, d = bc.head_dim, H = bc.num_attention_heads;
  EXPECT_EQ(m.table().at("model.layers.0.self_attn.q_proj.weight").numel, static_cast<uint64_t>(2 * H * d * D));
  EXPECT_EQ(m.table().at("model.layers.0.self_attn.k_proj.weight").numel, static_cast<uint64_t>(bc.kv_dim() * D));
  const float* bq = base->param("model.layers.1.self_attn.q_proj.weight");
  const float* q = m.param("model.layers.1.self_attn.q_proj.weight");
  for (int64_t i = 0; i < H; ++i) {
    EXPECT_TRUE(std::equal(bq + i * d * D, bq + (i + 1) * d * D, q + 2 * i * d * D)) << "head " << 2 * i;
    EXPECT_FALSE(std::equal(bq + i * d * D, bq + (i + 1) * d * D, q + (2 * i + 1) * d * D)) << "head " << 2 * i + 1;
  }
  if (m.table().find("model.layers.1.self_attn.q_proj.bias") != nullptr) {
    const float* bias = m.param("model.layers.1.self_attn.q_proj.bias");
    EXPECT_EQ(bias[0], base->param("model.layers.1.self_attn.q_proj.bias")[0]);
    EXPECT_EQ(bias[d], 0.0f) << "the new heads' biases start at 0";
  }
  const float* lp = m.param("model.layers.1.self_attn.lambda_proj.weight");
  const float bound = 1.0f / std::sqrt(static_cast<float>(D));
  EXPECT_TRUE(std::all_of(lp, lp + H * D, [&](float x) { return std::abs(x) <= bound; }));
  EXPECT_TRUE(std::any_of(lp, lp + H * D, [](float x) { return x != 0.0f; }));
  EXPECT_EQ(m.param("model.layers.1.self_attn.o_proj.weight")[3], base->param("model.layers.1.self_attn.o_proj.weight")[3]);
  EXPECT_GT(diff_from_base(m), 1e-3);
}

TEST_P(ConvertTest, DefaultAndMirrorChangeTheOutput) {
  Model d = convert_model(*base, options(false, true));
  Model mirror = convert_model(*base, options(false, false, false, true));
  Model zero_subln = convert_model(*base, options(true, true));
  EXPECT_GT(diff_from_base(d), 1e-3);
  EXPECT_GT(diff_from_base(mirror), 1e-3);
  EXPECT_GT(diff_from_base(zero_subln), 1e-3) << "subln alone changes the function";
}

TEST_P(ConvertTest, DoubleModeRowsFollowTheFlags) {
  const ModelConfig& bc = base->config();
  const int64_t D = bc.hidden_size, qrows = bc.q_dim(), krows = bc.kv_dim();
  Model d = convert_model(*base, options(false, true));
  Model z = convert_model(*base, options(true, false));
  Model m = convert_model(*base, options(false, true, false, true));
  const float bound = 1.0f / std::sqrt(float(D));
  for (int64_t l = 0; l < bc.num_hidden_layers; ++l) {
    for (auto [proj, rows] : {std::pair{"q_proj", qrows}, {"k_proj", krows}}) {
      const std::string w = fmt::format("model.layers.{}.self_attn.{}.weight", l, proj);
      const float* src = base->param(w);
      const float *dw = d.param(w), *zw = z.param(w), *mw = m.param(w);
      double sq = 0;
      for (int64_t i = 0; i < rows * D; ++i) {
        ASSERT_EQ(dw[i], src[i]);
        ASSERT_EQ(zw[i], src[i]);
        ASSERT_EQ(mw[i], src[i]);
        ASSERT_EQ(zw[rows * D + i], 0.0f);
        ASSERT_EQ(mw[rows * D + i], src[i]);
        ASSERT_LE(std::abs(dw[rows * D + i]), bound);
        sq += double(dw[rows * D + i]) * dw[rows * D + i];
      }
      EXPECT_NEAR(std::sqrt(sq / (rows * D)), bound / std::sqrt(3.0), bound * 0.1) << "uniform(-b, b) has sd b/sqrt(3)";
      if (bc.qkv_bias()) {
        const std::string b = fmt::format("model.layers.{}.self_attn.{}.bias", l, proj);
        for (int64_t i = 0; i < rows; ++i) {
          ASSERT_EQ(d.param(b)[i], base->param(b)[i]);
          ASSERT_EQ(d.param(b)[rows + i], 0.0f);
          ASSERT_EQ(m.param(b)[rows + i], base->param(b)[i]);
        }
      }
    }
    EXPECT_FLOAT_EQ(*d.param(fmt::format("model.layers.{}.self_attn.lambda_init", l)),
                    float(0.8 - 0.6 * std::exp(-0.3 * l)));
    double sq = 0;
    int n = 0;
    for (const char* v : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"}) {
      const float* x = d.param(fmt::format("model.layers.{}.self_attn.{}", l, v));
      for (int64_t i = 0; i < bc.head_dim; ++i, ++n) sq += double(x[i]) * x[i];
    }
    EXPECT_NEAR(std::sqrt(sq / n), 0.1, 0.05) << "lambda vectors ~ N(0, 0.1)";
    const float* subln = d.param(fmt::format("model.layers.{}.self_attn.subln.weight", l));
    for (int64_t i = 0; i < bc.head_dim; ++i) ASSERT_EQ(subln[i], 1.0f);
  }
}

TEST_P(ConvertTest, SplitModeAndDiffLlamaKeepTheProjections) {
  const ModelConfig& bc = base->config();
  if (bc.num_attention_heads % 2 || bc.num_key_value_heads % 2) GTEST_SKIP() << "odd head count";
  Model s = convert_model(*base, options(false, true, true));
  Model dl = convert_model(*base, options(false, true, false, false, AttentionLayout::diffllama));
  ConvertOptions plain = options(false, true, false, false, AttentionLayout::diffllama);
  plain.plain_o_proj = true;
  Model dl_plain = convert_model(*base, plain);
  const int64_t H = bc.num_attention_heads, d = bc.head_dim, D = bc.hidden_size;
  for (const auto& p : base->table().params()) {
    const float* a = base->param(p.name);
    ASSERT_TRUE(std::equal(a, a + p.numel, dl_plain.param(p.name))) << p.name << ": --plain-o-proj copies everything";
    const bool o_proj = p.name.ends_with("self_attn.o_proj.weight");
    for (const Model* m : {&s, &dl}) {
      const float* b = m->param(p.name);
      if (!o_proj) {
        ASSERT_TRUE(std::equal(a, a + p.numel, b)) << p.name << " must be copied (the seed leaves q/k random in split mode)";
        continue;
      }
      // Diff-head i writes [value of head i ; value of head i + H/2] into column blocks 2i, 2i+1.
      for (int64_t r = 0; r < D; ++r)
        for (int64_t i = 0; i < H / 2; ++i)
          for (int64_t k = 0; k < d; ++k) {
            ASSERT_EQ(b[r * H * d + 2 * i * d + k], a[r * H * d + i * d + k]) << p.name << " row " << r << " head " << i;
            ASSERT_EQ(b[r * H * d + (2 * i + 1) * d + k], a[r * H * d + (i + H / 2) * d + k]) << p.name;
          }
    }
  }
  EXPECT_TRUE(s.config().split_heads);
  EXPECT_EQ(s.config().diff_value_width(), 2 * bc.head_dim);
  EXPECT_EQ(dl.config().layout, AttentionLayout::diffllama);
}

TEST_P(ConvertTest, ConfigRecordsLayoutAndFlags) {
  Model m = convert_model(*base, options(false, false, false, true));
  const auto& raw = m.config().raw;
  EXPECT_EQ(raw["model_type"], "llama-differential");
  EXPECT_EQ(raw["architectures"][0], "LlamaDifferentialForCausalLM");
  EXPECT_EQ(raw["split_heads"], false);
  EXPECT_EQ(raw["sublayer_norm"], false);
  EXPECT_EQ(raw["zero_init"], false);
  EXPECT_EQ(raw["mirror_weights"], true);
  EXPECT_EQ(raw["hidden_size"], base->config().raw["hidden_size"]);
  if (base->config().family == ModelFamily::llama) {
    EXPECT_FALSE(raw.contains("base_model_type"));
  } else {
    EXPECT_EQ(raw["base_model_type"], std::string(model_family_name(base->config().family)));
  }
  EXPECT_EQ(m.config().family, base->config().family);
}

TEST_P(ConvertTest, SavedAndReloadedGivesIdenticalLogits) {
  const ModelConfig& bc = base->config();
  for (auto layout : {AttentionLayout::llama_differential, AttentionLayout::diffllama, AttentionLayout::diff_v1,
                      AttentionLayout::diff_v2}) {
    if (layout == AttentionLayout::diffllama && bc.num_attention_heads % 2) continue;
    if (layout == AttentionLayout::diff_v1 && (bc.num_attention_heads % 2 || bc.num_key_value_heads % 2)) continue;
    Model m = convert_model(*base, options(false, true, false, false, layout));
    test::TempDir dir;
    model_save(m, dir.path(), DType::F32);
    Model back = model_load(dir.path());
    EXPECT_EQ(logits_of(back, g.batch), logits_of(m, g.batch)) << attention_layout_name(layout);
  }
}

TEST_P(ConvertTest, PrefillThenDecodeEqualsFullForward) {
  for (auto opts : {options(false, true), options(false, true, true),
                    options(false, true, false, false, AttentionLayout::diff_v1),
                    options(false, true, false, false, AttentionLayout::diff_v2)}) {
    const bool pairs_kv = opts.split_heads || opts.layout == AttentionLayout::diff_v1;
    if (pairs_kv && (base->config().num_attention_heads % 2 || base->config().num_key_value_heads % 2)) continue;
    Model m = convert_model(*base, opts);
    const int64_t T = g.batch.seq_len, B = g.batch.batch, V = m.config().vocab_size;
    auto full = logits_of(m, g.batch);
    KVCache cache(m.config(), B, T);
    TokenBatch head = g.batch, tail = g.batch;
    head.seq_len = T - 1;
    tail.seq_len = 1;
    head.ids.clear(), head.position_ids.clear(), head.attention_mask.clear();
    tail.ids.clear(), tail.position_ids.clear(), tail.attention_mask.clear();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        TokenBatch& dst = t + 1 < T ? head : tail;
        dst.ids.push_back(g.batch.ids[b * T + t]);
        dst.position_ids.push_back(g.batch.position_ids[b * T + t]);
        dst.attention_mask.push_back(g.batch.attention_mask[b * T + t]);
      }
    std::vector<float> out;
    m.forward(head, &cache, LogitsMode::last, out);
    m.forward(tail, &cache, LogitsMode::last, out);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(out[b * V + v], full[(b * T + T - 1) * V + v], 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Bases, ConvertTest, ::testing::ValuesIn(kBases), [](const auto& i) { return i.param; });

TEST(ConvertOptions, InvalidCombinationsAreRejectedBeforeWork) {
  auto g = test::golden_case_load("llama_mha");
  const ModelConfig c = model_config_load(g.dir / "config.json");
  auto expect_error = [](const ModelConfig& config, ConvertOptions o, const char* part) {
    try {
      convert_options_check(config, o);
      ADD_FAILURE() << "accepted: " << part;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error(c, options(true, false, true), "--split-heads and --zero-init");
  expect_error(c, options(true, false, false, true), "--zero-init and --mirror-weights");
  expect_error(c, options(false, true, true, true), "--mirror-weights applies to double mode");
  expect_error(c, options(true, true, false, false, AttentionLayout::diffllama), "--zero-init does not apply");
  ConvertOptions plain_double = options(false, true);
  plain_double.plain_o_proj = true;
  expect_error(c, plain_double, "--plain-o-proj applies to --split-heads and --format diffllama only");
  expect_error(c, options(false, true, true, false, AttentionLayout::diffllama),
               "--split-heads does not apply to --format diffllama");
  ConvertOptions no_norm = options(false, false, false, false, AttentionLayout::diffllama);
  no_norm.sublayer_norm_given = true;
  expect_error(c, no_norm, "--no-sublayer-norm");

  ModelConfig odd = c;
  odd.num_attention_heads = 3;
  odd.num_key_value_heads = 3;
  expect_error(odd, options(false, true, true), "even number of attention heads, but the model has 3");
  expect_error(odd, options(false, true, false, false, AttentionLayout::diffllama), "even number of attention heads");
  EXPECT_NO_THROW(convert_options_check(odd, options(false, true)));  // double mode takes any head count
  ModelConfig odd_kv = c;
  odd_kv.num_key_value_heads = 1;
  expect_error(odd_kv, options(false, true, true), "even number of key/value heads, but the model has 1");
  EXPECT_NO_THROW(convert_options_check(odd_kv, options(false, true, false, false, AttentionLayout::diffllama)));

  // diff-v1 pairs the model's own adjacent heads: no new rows, subln always on, even H and KV.
  const AttentionLayout v1 = AttentionLayout::diff_v1;
  expect_error(c, options(false, true, true, false, v1), "--split-heads does not apply to --format diff-v1");
  expect_error(c, options(true, true, false, false, v1), "--zero-init does not apply to --format diff-v1");
  expect_error(c, options(false, true, false, true, v1), "--mirror-weights does not apply to --format diff-v1");
  ConvertOptions v1_no_norm = options(false, false, false, false, v1);
  v1_no_norm.sublayer_norm_given = true;
  expect_error(c, v1_no_norm, "--no-sublayer-norm does not apply to --format diff-v1");
  expect_error(odd_kv, options(false, true, false, false, v1), "needs even numbers of attention and key/value heads");
  EXPECT_NO_THROW(convert_options_check(c, options(false, true, false, false, v1)));

  // --init identity: llama-differential double mode without subln only.
  ConvertOptions ident = options(false, true);
  ident.init = ConvertInit::identity;
  expect_error(c, ident, "--init identity cannot be used with --sublayer-norm");
  ident.sublayer_norm = false;
  EXPECT_NO_THROW(convert_options_check(c, ident));
  ident.mirror_weights = true;
  EXPECT_NO_THROW(convert_options_check(c, ident)) << "q2/k2 may be copies";
  ident.mirror_weights = false;
  ident.split_heads = true;
  expect_error(c, ident, "--init identity cannot be used with --split-heads");
  ident.split_heads = false;
  ident.zero_init = true;
  expect_error(c, ident, "--init identity and --zero-init");
  ident.zero_init = false;
  for (AttentionLayout layout : {AttentionLayout::diffllama, v1}) {
    ident.layout = layout;
    expect_error(c, ident, "does not apply to --format");
  }

  // diff-v2: no split mode, no zero-init (lambda = sigmoid is never 0), no norm.
  const AttentionLayout v2 = AttentionLayout::diff_v2;
  expect_error(c, options(false, true, true, false, v2), "--split-heads does not apply to --format diff-v2");
  expect_error(c, options(true, false, false, false, v2), "--zero-init does not apply to --format diff-v2");
  ConvertOptions v2_norm = options(false, true, false, false, v2);
  v2_norm.sublayer_norm_given = true;
  expect_error(c, v2_norm, "--sublayer-norm does not apply to --format diff-v2");
  ConvertOptions v2_ident = options(false, true, false, false, v2);
  v2_ident.init = ConvertInit::identity;
  EXPECT_NO_THROW(convert_options_check(c, v2_ident));
  EXPECT_NO_THROW(convert_options_check(odd, options(false, true, false, false, v2))) << "any head count";

  auto diff = test::golden_case_load("diffllama_gqa");
  expect_error(model_config_load(diff.dir / "config.json"), options(false, true), "already differential");
}

}  // namespace
}  // namespace difftx

namespace difftx {
namespace {

// The seed's zero-init is a fixed point of training: with q2/k2 rows, lambda vectors and
// lambda_init all zero, every gradient of those parameters is exactly zero (spec §5). After a
// default or mirror conversion they get non-zero gradients.
TEST(ConvertGradients, ZeroInitIsAFixedPointOfTraining) {
  auto g = test::golden_case_load("llama_gqa_tied_padded");
  Model base = model_load(g.dir);
  std::vector<int32_t> targets;
  for (int64_t b = 0; b < g.batch.batch; ++b)
    for (int64_t t = 0; t < g.batch.seq_len; ++t)
      targets.push_back(t + 1 < g.batch.seq_len && g.batch.attention_mask[b * g.batch.seq_len + t + 1]
                            ? g.batch.ids[b * g.batch.seq_len + t + 1]
                            : -100);
  auto negative_grad_norm = [&](const Model& m) {
    std::vector<float> grads(m.weights().size(), 0.0f);
    ForwardTrace trace;
    m.loss_and_backward(g.batch, targets, 0.1f, grads, trace);
    const ModelConfig& c = m.config();
    double sum = 0;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      for (const char* v : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"}) {
        const ParamSpec& p = m.table().at(fmt::format("model.layers.{}.self_attn.{}", l, v));
        for (uint64_t i = 0; i < p.numel; ++i) sum += std::abs(grads[p.offset + i]);
      }
      for (auto [proj, rows] : {std::pair{"q_proj", c.q_dim()}, {"k_proj", c.kv_dim()}}) {
        const ParamSpec& p = m.table().at(fmt::format("model.layers.{}.self_attn.{}.weight", l, proj));
        for (int64_t i = rows * c.hidden_size; i < 2 * rows * c.hidden_size; ++i) sum += std::abs(grads[p.offset + i]);
      }
    }
    return sum;
  };
  // stuck_negative_component says so exactly when those gradients are zero.
  for (bool subln : {false, true}) {
    const Model m = convert_model(*&base, options(true, subln));
    EXPECT_EQ(negative_grad_norm(m), 0.0) << "subln " << subln;
    const std::string stuck = stuck_negative_component(m);
    EXPECT_NE(stuck.find("layers 0-1: lambda_q1, lambda_k1, lambda_q2, lambda_k2 and lambda_init are all zero"),
              std::string::npos) << stuck;
    EXPECT_NE(stuck.find("layers 0-1: the negative q_proj and k_proj rows are all zero"), std::string::npos) << stuck;
  }
  // An identity conversion (spec §9) starts at the base function, yet lambda's vectors get gradients.
  for (const ConvertOptions& o : {options(false, true), options(false, false, false, true), identity_options()}) {
    const Model m = convert_model(base, o);
    EXPECT_GT(negative_grad_norm(m), 1e-3);
    EXPECT_EQ(stuck_negative_component(m), "");
  }
  EXPECT_EQ(stuck_negative_component(base), "") << "a standard model has no negative component";

  // diff-v2's identity conversion (spec §9): lambda_proj gets -sigma'(0) <g_i, A V> x, and the two
  // copies of each query head get gradients in the ratio 1 : -lambda = 1 : -1/2, so they separate.
  ConvertOptions v2 = options(false, false, false, false, AttentionLayout::diff_v2);
  v2.init = ConvertInit::identity;
  const Model m = convert_model(base, v2);
  std::vector<float> grads(m.weights().size(), 0.0f);
  ForwardTrace trace;
  m.loss_and_backward(g.batch, targets, 0.1f, grads, trace);
  const ModelConfig& c = m.config();
  const int64_t D = c.hidden_size, d = c.head_dim, H = c.num_attention_heads;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const ParamSpec& lp = m.table().at(fmt::format("model.layers.{}.self_attn.lambda_proj.weight", l));
    double lp_sum = 0;
    for (uint64_t i = 0; i < lp.numel; ++i) lp_sum += std::abs(grads[lp.offset + i]);
    EXPECT_GT(lp_sum, 1e-4) << "layer " << l;
    const ParamSpec& q = m.table().at(fmt::format("model.layers.{}.self_attn.q_proj.weight", l));
    double first_sq = 0, worst = 0;
    for (int64_t i = 0; i < H; ++i)
      for (int64_t e = 0; e < d * D; ++e) {
        const float g1 = grads[q.offset + 2 * i * d * D + e], g2 = grads[q.offset + (2 * i + 1) * d * D + e];
        first_sq += static_cast<double>(g1) * g1;
        worst = std::max(worst, std::abs(static_cast<double>(g2) + 0.5 * g1));
      }
    EXPECT_GT(first_sq, 1e-12) << "layer " << l;
    EXPECT_LE(worst, 1e-6 * std::sqrt(first_sq)) << "layer " << l << ": head 2i+1's gradient is not -1/2 of head 2i's";
  }
}

}  // namespace
}  // namespace difftx
