// LoRA adapters through the CLI: `forward/generate/eval --lora DIR` (unmerged) and
// `merge-lora CONFIG.yml` (folded into the weights), on the golden cases' PEFT-format adapters
// (tools/reference/lora_ref.py) and on the embedded tokenizer-bearing tiny Mistral.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "io/json_file.h"
#include "io/safetensors_write.h"
#include "cli/forward_top.h"
#include "test_util.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;

fs::path golden(const std::string& name) { return test::source_dir() / "tests/golden" / name; }

TEST(LoraCli, ForwardWithTheAdapterEqualsTheMergedModel) {
  test::TempDir dir;
  for (const char* name : {"llama_mha", "diff_double_subln_gqa", "diff_v2_gqa_tied_padded"}) {
    const fs::path g = golden(name), cfg = dir.path() / (std::string(name) + ".yml");
    test::write_text(cfg, "base_model: " + g.string() + "\noutput_dir: " + (dir.path() / name).string() +
                              "\nlora_model_dir: " + (g / "lora").string() + "\n");
    auto merge = test::run_difftx({"merge-lora", cfg.string(), "--json"});
    ASSERT_EQ(merge.exit_code, 0) << merge.err;
    const ordered_json report = json_parse(merge.out, "merge-lora output");
    EXPECT_EQ(report["output_dir"], (dir.path() / name / "merged").string());
    EXPECT_GE(report["modules"].get<int64_t>(), 8);
    EXPECT_EQ(report["dtype"], "F32");
    const std::vector<std::string> ids = {"--ids", "1,5,9,12,40,2,77,3", "--top", "5", "--json"};
    auto with = [&](std::vector<std::string> head) {
      head.insert(head.end(), ids.begin(), ids.end());
      return test::forward_top_ids(head);
    };
    const auto unmerged = with({"forward", g.string(), "--lora", (g / "lora").string()});
    EXPECT_EQ(unmerged, with({"forward", (dir.path() / name / "merged").string()})) << name;
    EXPECT_NE(unmerged, with({"forward", g.string()})) << name << ": the adapter changes the model";
    // bf16 matrices keep the adapter float32 beside them: the same top-1 (bf16 rounding may swap
    // the close ranks below it).
    const auto bf16 = with({"forward", g.string(), "--lora", (g / "lora").string(), "--weight-dtype", "bf16"});
    ASSERT_EQ(bf16.size(), unmerged.size());
    for (size_t t = 0; t < bf16.size(); ++t) EXPECT_EQ(bf16[t][0], unmerged[t][0]) << name << " position " << t;
  }
}

TEST(LoraCli, MergeKeepsExistingOutputsAndRefusesBadAdapters) {
  test::TempDir dir;
  const fs::path g = golden("llama_mha"), cfg = dir.path() / "m.yml";
  test::write_text(cfg, "base_model: " + g.string() + "\noutput_dir: " + (dir.path() / "out").string() +
                            "\nlora_model_dir: " + (g / "lora").string() + "\n");
  ASSERT_EQ(test::run_difftx({"merge-lora", cfg.string()}).exit_code, 0);
  const auto written = fs::last_write_time(dir.path() / "out/merged/model.safetensors");
  auto again = test::run_difftx({"merge-lora", cfg.string()});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("pass --overwrite"), std::string::npos) << again.err;
  EXPECT_EQ(fs::last_write_time(dir.path() / "out/merged/model.safetensors"), written);
  EXPECT_EQ(test::run_difftx({"merge-lora", cfg.string(), "--overwrite"}).exit_code, 0);
  const auto rewritten = fs::last_write_time(dir.path() / "out/merged/model.safetensors");

  // An adapter made for another model (diffllama_gqa's, on llama_mha): refused naming the tensor,
  // before the existing output is touched (even with --overwrite).
  auto other = test::run_difftx({"merge-lora", cfg.string(), "--lora-model-dir", (golden("diffllama_gqa") / "lora").string(),
                                 "--overwrite"});
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("has shape"), std::string::npos) << other.err;
  EXPECT_EQ(fs::last_write_time(dir.path() / "out/merged/model.safetensors"), rewritten);
  auto missing = test::run_difftx({"merge-lora", cfg.string(), "--lora-model-dir", (dir.path() / "nothing").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nothing: no such adapter directory"), std::string::npos) << missing.err;
  // Without lora_model_dir the adapter is output_dir (axolotl's rule), which holds none here.
  test::write_text(cfg, "base_model: " + g.string() + "\noutput_dir: " + (dir.path() / "empty").string() + "\n");
  auto absent = test::run_difftx({"merge-lora", cfg.string()});
  EXPECT_EQ(absent.exit_code, 2);
  EXPECT_NE(absent.err.find("no lora_model_dir, so the adapter is read from output_dir " + (dir.path() / "empty").string() +
                            " (axolotl's default)"),
            std::string::npos)
      << absent.err;
  EXPECT_FALSE(fs::exists(dir.path() / "empty" / "merged"));
}

// An adapter written here for the embedded model (r 8, alpha 16 on q_proj and v_proj of every
// layer, A and B drawn at random): generate with --lora gives the merged model's text, and eval
// --lora --kl-base compares the adapted model with its base.
TEST(LoraCli, GenerateAndEvalOnTheEmbeddedModel) {
  test::TempDir dir;
  const fs::path model = test::source_dir() / "examples/models/wp-llama-12m", adapter = dir.path() / "adapter";
  fs::create_directories(adapter);
  const ordered_json config = json_read_file(model / "config.json");
  const int64_t D = config["hidden_size"], L = config["num_hidden_layers"], d = D / config["num_attention_heads"].get<int64_t>();
  const int64_t kv_rows = config["num_key_value_heads"].get<int64_t>() * d, r = 8;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f / std::sqrt(float(D)), 1.0f / std::sqrt(float(D)));
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<std::vector<float>> storage;
  std::vector<TensorWrite> tensors;
  for (int64_t l = 0; l < L; ++l)
    for (auto [proj, out] : {std::pair<std::string, int64_t>{"q_proj", D}, {"v_proj", kv_rows}}) {
      const std::string module = "base_model.model.model.layers." + std::to_string(l) + ".self_attn." + proj;
      storage.emplace_back(static_cast<size_t>(r * D));
      for (float& x : storage.back()) x = uniform(rng);
      tensors.push_back({module + ".lora_A.weight", {r, D}, storage.back().data(), DType::F32});
      storage.emplace_back(static_cast<size_t>(out * r));
      for (float& x : storage.back()) x = normal(rng);
      tensors.push_back({module + ".lora_B.weight", {out, r}, storage.back().data(), DType::BF16});
    }
  safetensors_write(adapter / "adapter_model.safetensors", tensors);
  json_write_file(adapter / "adapter_config.json",
                  {{"peft_type", "LORA"}, {"task_type", "CAUSAL_LM"}, {"r", r}, {"lora_alpha", 16},
                   {"lora_dropout", 0.05}, {"target_modules", {"q_proj", "v_proj"}}, {"use_rslora", false},
                   {"bias", "none"}});
  test::write_text(dir.path() / "m.yml", "base_model: " + model.string() + "\noutput_dir: " + dir.path().string() +
                                             "\nlora_model_dir: " + adapter.string() + "\n");
  ASSERT_EQ(test::run_difftx({"merge-lora", (dir.path() / "m.yml").string()}).exit_code, 0);
  EXPECT_TRUE(fs::exists(dir.path() / "merged" / "tokenizer.json")) << "the tokenizer travels with the merged model";
  auto generate = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"generate", "", "--prompt", "Pierre looked at", "--max-new-tokens", "24"};
    args[1] = extra.empty() || extra[0] != "merged" ? model.string() : (dir.path() / "merged").string();
    for (size_t i = extra.empty() || extra[0] != "merged" ? 0 : 1; i < extra.size(); ++i) args.push_back(extra[i]);
    auto run = test::run_difftx(args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    return run.out;
  };
  const std::string adapted = generate({"--lora", adapter.string()});
  EXPECT_EQ(adapted, generate({"merged"}));
  EXPECT_NE(adapted, generate({})) << "the adapter changes the greedy text";
  auto kl = test::run_difftx({"eval", model.string(), "--lora", adapter.string(), "--kl-base", model.string(), "--text",
                              (test::source_dir() / "README.md").string(), "--max-tokens", "200", "--json"});
  ASSERT_EQ(kl.exit_code, 0) << kl.err;
  const ordered_json j = json_parse(kl.out, "eval --json");
  EXPECT_GT(j["kld_mean"].get<double>(), 1e-4) << "the base is read without the adapter";
  EXPECT_EQ(j["lora"], adapter.string()) << "the report names the adapter";
  EXPECT_NE(j["mean_loss"], j["base_mean_loss"]);
}

TEST(LoraCli, AdaptersRunOnTheCpuOnly) {
  const fs::path g = golden("llama_mha");
  auto r = test::run_difftx({"forward", g.string(), "--ids", "1,2", "--lora", (g / "lora").string(), "--device", "cuda"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("adapters run unmerged on the CPU only"), std::string::npos) << r.err;
}

TEST(LoraCli, AnEmptyAdapterPathIsRefused) {
  auto r = test::run_difftx({"forward", golden("llama_mha").string(), "--ids", "1,2", "--lora", ""});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--lora: an empty path"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace difftx
