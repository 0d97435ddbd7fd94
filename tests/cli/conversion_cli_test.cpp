// The conversions beyond the seed end to end through the CLI, on the train fixture's tiny Mistral
// (H=4, KV=2) with real text: `--init identity` (spec §9) starts exactly at the base model and every
// new tensor trains; `--format diff-v1` (spec §7) and `--format diff-v2` (spec §8) convert, train,
// evaluate and generate; bad flag combinations exit 2 and write nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/train_fixture.h"
#include "io/json_file.h"
#include "io/safetensors_write.h"
#include "model/model.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::run_difftx;
namespace fs = std::filesystem;

class ConversionCliTest : public test::TrainCliFixture {
 protected:
  // convert-diff-transformer of the fixture's base into `name` with `flags`; the --json report.
  ordered_json convert(const std::string& name, std::vector<std::string> flags) {
    const fs::path d = dir_->path();
    std::vector<std::string> args = {"convert-diff-transformer", (d / "conv.yml").string(), "--output-dir",
                                     (d / name).string(), "--json", "--debug"};
    args.insert(args.end(), flags.begin(), flags.end());
    auto r = run_difftx(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json_parse(r.out, "convert --json") : ordered_json();
  }
  ordered_json kl_from_base(const std::string& model) {
    auto r = run_difftx({"eval", (dir_->path() / model).string(), "--text", (dir_->path() / "text.txt").string(),
                         "--context", "64", "--stride", "64", "--max-tokens", "512", "--kl-base",
                         (dir_->path() / "base").string(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json_parse(r.out, "eval --json") : ordered_json();
  }
};

TEST_F(ConversionCliTest, IdentityInitStartsAtTheBaseAndEveryNewTensorTrains) {
  const ordered_json report = convert("ident", {"--init", "identity"});
  EXPECT_EQ(report["layout"], "llama-differential");
  EXPECT_EQ(report["debug"]["match"], true);
  EXPECT_EQ(report["debug"]["match_expected"], true);
  const ordered_json start = kl_from_base("ident");
  EXPECT_LT(start["kld_max"].get<double>(), 1e-9);
  EXPECT_EQ(start["same_top1"].get<double>(), 1.0);
  EXPECT_NEAR(start["mean_loss"].get<double>(), start["base_mean_loss"].get<double>(), 1e-5);

  const Model converted = model_load(dir_->path() / "ident");
  const ModelConfig& c = converted.config();
  EXPECT_FALSE(c.sublayer_norm) << "--init identity implies --no-sublayer-norm";
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    EXPECT_EQ(converted.layer_lambda(l), 0.0f) << "layer " << l;
    EXPECT_EQ(*converted.param(fmt::format("model.layers.{}.self_attn.lambda_init", l)), 0.0f);
  }

  // Two AdamW steps on real text, no weight decay (so a tensor moves only through its gradient) and
  // no warm-up (mix 1 from the first step).
  const fs::path cfg = config("ident-run", "base_model: " + (dir_->path() / "ident").string() +
                                               "\nmax_steps: 2\nwarmup_steps: 0\nweight_decay: 0.0\n"
                                               "diff_attn_warmup_steps: 0\nval_set_size: 0\nsave_steps: 0");
  auto r = run_difftx({"train", cfg.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Model trained = model_load(dir_->path() / "ident-run");
  const int64_t D = c.hidden_size;
  auto max_change = [&](const std::string& name, uint64_t begin, uint64_t end) {
    const float *a = converted.param(name), *b = trained.param(name);
    double m = 0;
    for (uint64_t i = begin; i < end; ++i) m = std::max(m, static_cast<double>(std::abs(a[i] - b[i])));
    return m;
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.self_attn.", l);
    for (const char* v : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"})
      EXPECT_GT(max_change(p + v, 0, c.head_dim), 1e-6) << p << v << " did not move";
    // the negative rows of the doubled q_proj / k_proj
    EXPECT_GT(max_change(p + "q_proj.weight", c.q_dim() * D, 2 * c.q_dim() * D), 1e-6) << p << "q2 rows";
    EXPECT_GT(max_change(p + "k_proj.weight", c.kv_dim() * D, 2 * c.kv_dim() * D), 1e-6) << p << "k2 rows";
    EXPECT_NE(trained.layer_lambda(l), 0.0f) << "layer " << l << ": lambda left zero";
  }
  const ordered_json after = kl_from_base("ident-run");
  EXPECT_GT(after["kld_mean"].get<double>(), 1e-6) << "the trained model still equals the base";
}

TEST_F(ConversionCliTest, DiffV1ConvertsTrainsEvaluatesAndGenerates) {
  const ordered_json report = convert("v1", {"--format", "diff-v1"});
  EXPECT_EQ(report["layout"], "diff-v1");
  EXPECT_EQ(report["debug"]["match_expected"], false);
  const ordered_json cfg_json = json_parse(test::read_text(dir_->path() / "v1" / "config.json"), "config.json");
  EXPECT_EQ(cfg_json["model_type"], "diff-v1");
  EXPECT_EQ(cfg_json["architectures"][0], "DiffV1ForCausalLM");
  EXPECT_EQ(cfg_json["base_model_type"], "mistral");

  // Every Llama tensor is the base's; the new ones: lambda vectors and subln [2d] of ones.
  const Model base = model_load(dir_->path() / "base"), v1 = model_load(dir_->path() / "v1");
  for (const ParamSpec& p : base.table().params()) {
    const float *a = base.param(p.name), *b = v1.param(p.name);
    ASSERT_NE(b, nullptr) << p.name;
    EXPECT_TRUE(std::equal(a, a + p.numel, b)) << p.name << " changed";
  }
  const int64_t d = v1.config().head_dim;
  EXPECT_EQ(v1.table().at("model.layers.1.self_attn.subln.weight").numel, static_cast<uint64_t>(2 * d));
  EXPECT_FALSE(v1.table().find("model.layers.1.self_attn.lambda_init")) << "diff-v1 recomputes lambda_init";

  auto inspect = run_difftx({"inspect", (dir_->path() / "v1").string()});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("diff-v1"), std::string::npos) << inspect.out;

  // Train a few steps (warm-up mix and the monitor's lambda keys apply), then evaluate and generate.
  const fs::path cfg = config("v1-run", "base_model: " + (dir_->path() / "v1").string() + "\nmax_steps: 4\n"
                                        "save_steps: 0");
  auto r = run_difftx({"train", cfg.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = metrics(dir_->path() / "v1-run");
  bool monitored = false;
  for (const auto& row : rows)
    if (row.contains("layer_0/lambda_full")) {
      monitored = true;
      EXPECT_NEAR(row["layer_0/lambda_init"].get<double>(), 0.2, 1e-6);
      EXPECT_TRUE(row.contains("aggregate/diff_attn_mix"));
    }
  EXPECT_TRUE(monitored) << "no monitor row";
  auto gen = run_difftx({"generate", (dir_->path() / "v1-run").string(), "--prompt", "It was", "--max-new-tokens",
                         "6", "--temperature", "0"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_EQ(gen.out.rfind("It was", 0), 0u) << gen.out;
  const ordered_json kl = kl_from_base("v1");
  EXPECT_GT(kl["kld_mean"].get<double>(), 1e-4) << "diff-v1 changes the function (norm and pairing)";
}

TEST_F(ConversionCliTest, DiffV2IdentityStartsAtTheBaseTrainsAndLogsItsLambda) {
  const ordered_json report = convert("v2", {"--format", "diff-v2", "--init", "identity"});
  EXPECT_EQ(report["layout"], "diff-v2");
  EXPECT_EQ(report["debug"]["match"], true);
  EXPECT_EQ(report["debug"]["match_expected"], true);
  const ordered_json start = kl_from_base("v2");
  EXPECT_LT(start["kld_max"].get<double>(), 1e-9);
  EXPECT_EQ(start["same_top1"].get<double>(), 1.0);
  const ordered_json cfg_json = json_parse(test::read_text(dir_->path() / "v2" / "config.json"), "config.json");
  EXPECT_EQ(cfg_json["model_type"], "diff-v2");
  EXPECT_EQ(cfg_json["architectures"][0], "DiffV2ForCausalLM");
  auto inspect = run_difftx({"inspect", (dir_->path() / "v2").string()});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("diff-v2"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("ok: every tensor"), std::string::npos) << inspect.out;

  // Two AdamW steps without weight decay: lambda_proj and both copies of every query head move;
  // the monitor logs the per-token lambda (1/2 at the start) and lambda_proj's norm.
  const fs::path cfg = config("v2-run", "base_model: " + (dir_->path() / "v2").string() +
                                            "\nmax_steps: 2\nwarmup_steps: 0\nweight_decay: 0.0\n"
                                            "diff_attn_warmup_steps: 0\nval_set_size: 0\nsave_steps: 0\n"
                                            "diff_attn_log_every: 1");
  auto r = run_difftx({"train", cfg.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Model converted = model_load(dir_->path() / "v2"), trained = model_load(dir_->path() / "v2-run");
  const ModelConfig& c = converted.config();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.self_attn.", l);
    for (const char* name : {"lambda_proj.weight", "q_proj.weight"}) {
      const ParamSpec& spec = converted.table().at(p + name);
      const float *a = converted.param(p + name), *b = trained.param(p + name);
      int64_t moved = 0;
      for (uint64_t i = 0; i < spec.numel; ++i) moved += a[i] != b[i];
      EXPECT_GT(moved, static_cast<int64_t>(spec.numel) / 2) << p << name;
    }
  }
  const auto rows = metrics(dir_->path() / "v2-run");
  ASSERT_FALSE(rows.empty());
  const ordered_json& first = rows.front();
  for (const char* key : {"layer_0/lambda_mean", "layer_0/lambda_std", "layer_0/lambda_proj_norm",
                          "aggregate/lambda_mean_mean", "aggregate/lambda_proj_norm_mean"})
    EXPECT_TRUE(first.contains(key)) << key << " in " << first.dump();
  EXPECT_FALSE(first.contains("layer_0/lambda_q1_norm")) << "diff-v2 has no lambda vectors";
  EXPECT_NEAR(first["layer_0/lambda_mean"].get<double>(), 0.5, 0.05) << "lambda starts at sigmoid(0) = 1/2";
  EXPECT_GT(first["layer_0/lambda_proj_norm"].get<double>(), 0.0);
  const ordered_json after = kl_from_base("v2-run");
  EXPECT_GT(after["kld_mean"].get<double>(), 1e-6);
  auto gen = run_difftx({"generate", (dir_->path() / "v2-run").string(), "--prompt", "It was", "--max-new-tokens",
                         "6", "--temperature", "0"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  // A warm-up ramps lambda from 0: the identity conversion is then not the base model; said once.
  const fs::path warm = config("v2-warm", "base_model: " + (dir_->path() / "v2").string() +
                                              "\nmax_steps: 1\nval_set_size: 0\nsave_steps: 0");
  auto w = run_difftx({"train", warm.string()});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  EXPECT_NE(w.err.find("diff_attn_warmup_steps ramps diff-v2's lambda from 0"), std::string::npos) << w.err;
  auto nocache = run_difftx({"generate", (dir_->path() / "v2-run").string(), "--prompt", "It was",
                             "--max-new-tokens", "6", "--temperature", "0", "--no-cache"});
  ASSERT_EQ(nocache.exit_code, 0) << nocache.err;
  EXPECT_EQ(gen.out, nocache.out) << "decoding with the KV cache gives the full forward's tokens";
}

TEST_F(ConversionCliTest, FlagsThatCannotApplyExitTwoAndWriteNothing) {
  const fs::path d = dir_->path();
  struct Case {
    std::vector<std::string> flags;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{"--init", "identity", "--sublayer-norm"}, "--init identity cannot be used with --sublayer-norm"},
      {{"--init", "identity", "--split-heads"}, "--init identity cannot be used with --split-heads"},
      {{"--init", "identity", "--zero-init", "--no-sublayer-norm"}, "--init identity and --zero-init"},
      {{"--init", "identity", "--format", "diffllama"}, "--init identity does not apply to --format diffllama"},
      {{"--init", "identity", "--format", "diff-v1"}, "--init identity does not apply to --format diff-v1"},
      {{"--format", "diff-v1", "--no-sublayer-norm"}, "--no-sublayer-norm does not apply to --format diff-v1"},
      {{"--format", "diff-v1", "--zero-init"}, "--zero-init does not apply to --format diff-v1"},
      {{"--format", "diff-v1", "--split-heads"}, "--split-heads does not apply to --format diff-v1"},
      {{"--init", "zeros"}, "--init"},
      {{"--format", "diff-v2", "--zero-init"}, "--zero-init does not apply to --format diff-v2"},
      {{"--format", "diff-v2", "--sublayer-norm"}, "--sublayer-norm does not apply to --format diff-v2"},
      {{"--format", "diff-v2", "--split-heads"}, "--split-heads does not apply to --format diff-v2"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"convert-diff-transformer", (d / "conv.yml").string(), "--output-dir",
                                     (d / "refused").string()};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    auto r = run_difftx(args);
    EXPECT_EQ(r.exit_code, 2) << fmt::format("{}", fmt::join(c.flags, " "));
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(d / "refused")) << fmt::format("{}", fmt::join(c.flags, " "));
  }
  // A base with an odd number of key/value heads cannot be paired adjacently.
  const fs::path golden = fs::path(DIFFTX_SOURCE_DIR) / "tests" / "golden";
  ordered_json odd = json_parse(test::read_text(golden / "llama_mha" / "config.json"), "config.json");
  odd["num_key_value_heads"] = 1;
  fs::create_directories(d / "odd-base");
  test::write_text(d / "odd-base" / "config.json", odd.dump());
  fs::copy_file(golden / "llama_mha" / "model.safetensors", d / "odd-base" / "model.safetensors");
  test::write_text(d / "odd.yml", "base_model: " + (d / "odd-base").string() + "\noutput_dir: " +
                                      (d / "odd-out").string() + "\n");
  auto r = run_difftx({"convert-diff-transformer", (d / "odd.yml").string(), "--format", "diff-v1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--format diff-v1 needs even numbers of attention and key/value heads, but the model has 4 and 1"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(d / "odd-out"));
}

// A checkpoint of diff-v2 whose lambda_proj is missing or has another layout's shape: exit 2 with
// the tensor named, for every command that loads it.
TEST_F(ConversionCliTest, ATensorOfTheWrongLayoutIsNamed) {
  convert("v2-bad-src", {"--format", "diff-v2"});
  const fs::path d = dir_->path();
  const Model m = model_load(d / "v2-bad-src");
  const ModelConfig& c = m.config();
  const std::string bad = "model.layers.1.self_attn.lambda_proj.weight";
  const std::vector<float> wide(static_cast<size_t>(2 * c.num_attention_heads * c.hidden_size), 0.5f);
  for (const bool drop : {true, false}) {
    const fs::path out = d / (drop ? "v2-missing" : "v2-wide");
    fs::create_directories(out);
    fs::copy_file(d / "v2-bad-src" / "config.json", out / "config.json");
    std::vector<TensorWrite> tensors;
    for (const ParamSpec& p : m.table().params()) {
      if (p.name == bad && drop) continue;
      if (p.name == bad) tensors.push_back({p.name, {2 * c.num_attention_heads, c.hidden_size}, wide.data()});
      else tensors.push_back({p.name, p.shape, m.param(p.name)});
    }
    safetensors_write(out / "model.safetensors", tensors);
    auto r = run_difftx({"forward", out.string(), "--ids", "1,5,7"});
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.err.find(bad), std::string::npos) << r.err;
    if (!drop) {
      EXPECT_NE(r.err.find(fmt::format("[{}, {}]", c.num_attention_heads, c.hidden_size)), std::string::npos)
          << r.err;
    }
  }
}

}  // namespace
}  // namespace difftx
