// LoRA adapters through the CLI: `forward/generate/eval --lora DIR` (unmerged) and
// `merge-lora CONFIG.yml` (folded into the weights), on the golden cases' PEFT-format adapters
// (tools/reference/lora_ref.py) and on the embedded tokenizer-bearing tiny Mistral.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/json_file.h"
#include "test_util.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;

fs::path golden(const std::string& name) { return test::source_dir() / "tests/golden" / name; }

// forward --json top-k ids per position.
std::vector<std::vector<int64_t>> top_ids(const std::vector<std::string>& args) {
  auto r = test::run_difftx(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::vector<int64_t>> out;
  for (const auto& row : json_parse(r.out, "forward output")) {
    out.emplace_back();
    for (const auto& t : row["top"]) out.back().push_back(t["id"].get<int64_t>());
  }
  return out;
}

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
      return top_ids(head);
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
  EXPECT_NE(missing.err.find("no adapter_config.json"), std::string::npos) << missing.err;
  // Without lora_model_dir the adapter is output_dir (axolotl's rule), which holds none here.
  test::write_text(cfg, "base_model: " + g.string() + "\noutput_dir: " + (dir.path() / "empty").string() + "\n");
  auto absent = test::run_difftx({"merge-lora", cfg.string()});
  EXPECT_EQ(absent.exit_code, 2);
  EXPECT_NE(absent.err.find((dir.path() / "empty" / "adapter_config.json").string()), std::string::npos) << absent.err;
  EXPECT_FALSE(fs::exists(dir.path() / "empty" / "merged"));
}

TEST(LoraCli, AdaptersRunOnTheCpuOnly) {
  const fs::path g = golden("llama_mha");
  auto r = test::run_difftx({"forward", g.string(), "--ids", "1,2", "--lora", (g / "lora").string(), "--device", "cuda"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("adapters run unmerged on the CPU only"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace difftx
