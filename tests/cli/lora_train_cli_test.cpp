// `difftx train` with `adapter: lora` end to end on the fixture's converted tiny Mistral: PEFT's
// output files, exact resumption with dropout, merge-lora of the result, continuing from
// lora_model_dir, and the keys it refuses.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli/train_fixture.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "cli/forward_top.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::run_difftx;
namespace fs = std::filesystem;

const char* kLora = "adapter: lora\nlora_r: 4\nlora_alpha: 8\nlora_dropout: 0.1\nlora_target_linear: true";

class LoraTrainCliTest : public test::TrainCliFixture {};

TEST_F(LoraTrainCliTest, WritesAPeftAdapterThatResumesExactlyAndMerges) {
  const fs::path out = dir_->path() / "lora";
  auto r = run_difftx({"train", config("lora", kLora).string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("LoRA: r 4, lora_alpha 8 (scaling 2)"), std::string::npos) << r.err;
  // PEFT's files, and no full model: the base stays where it is.
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));
  const ordered_json cfg = json_read_file(out / "adapter_config.json");
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);
  EXPECT_EQ(cfg["target_modules"],
            ordered_json({"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}));
  SafetensorsFile adapter(out / "adapter_model.safetensors");
  size_t lora_tensors = 0, lambdas = 0;
  for (const TensorInfo& t : adapter.tensors()) {
    EXPECT_EQ(t.name.rfind("base_model.model.model.layers.", 0), 0u) << t.name;
    lora_tensors += t.name.find(".lora_") != std::string::npos;
    lambdas += t.name.find(".lambda_q1") != std::string::npos;
  }
  EXPECT_GT(lora_tensors, 0u);
  EXPECT_GT(lambdas, 0u) << "the differential parameters train whole by default";
  EXPECT_TRUE(fs::exists(out / "checkpoint-6" / "adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(out / "checkpoint-6" / "model.safetensors"));
  auto m = metrics(out);
  ASSERT_GE(m.size(), 8u);
  EXPECT_LT(m.back()["loss"].get<double>(), m.front()["loss"].get<double>());

  // Interrupted after step 6 and resumed: the same losses and the same adapter, bit for bit
  // (the dropout masks are drawn again from the seed and the step).
  const fs::path part = dir_->path() / "lora-part";
  fs::create_directories(part);
  fs::copy(out / "checkpoint-6", part / "checkpoint-6", fs::copy_options::recursive);
  std::ofstream(part / "metrics.jsonl") << test::read_text(out / "metrics.jsonl");
  r = run_difftx({"train", config("lora-part", kLora).string(), "--resume-from-checkpoint",
                  (part / "checkpoint-6").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto resumed = metrics(part);
  ASSERT_EQ(resumed.size(), m.size());
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(resumed[i]["loss"], m[i]["loss"]) << "record " << i;
  EXPECT_EQ(test::read_text(part / "adapter_model.safetensors"), test::read_text(out / "adapter_model.safetensors"));

  // merge-lora reads the adapter from output_dir (axolotl's default) and writes output_dir/merged,
  // which computes what the base model with --lora computes.
  r = run_difftx({"merge-lora", config("lora", kLora).string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> ids = {"--ids", "1,5,9,12,40,2,77,3", "--top", "5", "--json"};
  auto with = [&](std::vector<std::string> head) {
    head.insert(head.end(), ids.begin(), ids.end());
    return test::forward_top_ids(head);
  };
  const auto unmerged = with({"forward", (dir_->path() / "diff").string(), "--lora", out.string()});
  EXPECT_EQ(with({"forward", (out / "merged").string()}), unmerged);
  EXPECT_NE(with({"forward", (dir_->path() / "diff").string()}), unmerged) << "training moved the model";
}

// Some differential parameters trained whole, the others frozen (one lambda vector of one layer);
// module paths as targets are written as paths (PEFT matches a bare name against every layer).
TEST_F(LoraTrainCliTest, PartsOfTheModelAsTargetsAndSavedTensors) {
  auto r = run_difftx({"train", config("some", "adapter: lora\nlora_train_diff_params: false\nmax_steps: 2\n"
                                               "lora_target_modules: [model.layers.0.self_attn.q_proj, down_proj]\n"
                                               "lora_modules_to_save: [model.layers.0.self_attn.lambda_q1]").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path out = dir_->path() / "some";
  const ordered_json targets = json_read_file(out / "adapter_config.json")["target_modules"];
  EXPECT_EQ(targets, ordered_json({"down_proj", "model.layers.0.self_attn.q_proj"}));
  SafetensorsFile adapter(out / "adapter_model.safetensors");
  EXPECT_NE(adapter.find("base_model.model.model.layers.0.self_attn.lambda_q1"), nullptr);
  EXPECT_EQ(adapter.find("base_model.model.model.layers.0.self_attn.lambda_k1"), nullptr);
  EXPECT_EQ(adapter.find("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"), nullptr);
}

TEST_F(LoraTrainCliTest, ContinuesFromLoraModelDirAndRefusesBadKeys) {
  ASSERT_EQ(run_difftx({"train", config("first", std::string(kLora) + "\nmax_steps: 2").string()}).exit_code, 0);
  const fs::path first = dir_->path() / "first";
  auto r = run_difftx({"train", config("second", std::string(kLora) + "\nmax_steps: 2\nlora_r: 8\nlora_model_dir: " +
                                                     first.string()).string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("the adapter's r 4"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("adapter values from " + first.string()), std::string::npos) << r.err;
  EXPECT_EQ(json_read_file(dir_->path() / "second" / "adapter_config.json")["r"], 4);

  // Resuming needs the same kind of run: a LoRA checkpoint with the adapter key, a full one without.
  ASSERT_EQ(run_difftx({"train", config("full", "max_steps: 3\nsave_steps: 2").string()}).exit_code, 0);
  r = run_difftx({"train", config("x1", "max_steps: 4").string(), "--resume-from-checkpoint",
                  (dir_->path() / "first" / "checkpoint-2").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("holds a LoRA adapter"), std::string::npos) << r.err;
  r = run_difftx({"train", config("x2", std::string(kLora) + "\nmax_steps: 4").string(), "--resume-from-checkpoint",
                  (dir_->path() / "full" / "checkpoint-2").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("holds a whole model"), std::string::npos) << r.err;

  // evaluate applies lora_model_dir's adapter, as axolotl evaluate does.
  auto loss = [&](const std::string& name, const std::string& extra) {
    auto e = run_difftx({"evaluate", config(name, extra).string(), "--json"});
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return json_parse(e.out, "evaluate --json")["eval_loss"].get<double>();
  };
  EXPECT_NE(loss("ev1", "adapter: lora\nlora_target_linear: true\nlora_model_dir: " + first.string()),
            loss("ev0", ""));

  const std::pair<std::string, std::string> bad[] = {
      {"adapter: lora\nlora_r: 100000\nlora_target_linear: true", "exceeds the rank"},
      {"adapter: qlora", "4-bit"},
      {"adapter: lora\nlora_r: 0\nlora_target_linear: true", "lora_r"},
      {"adapter: lora\nlora_target_modules: [q_proj, qkv_proj]", "\"qkv_proj\" matches no Linear"},
      {"adapter: lora\nlora_dropout: 1\nlora_target_linear: true", "lora_dropout"},
      {"adapter: lora", "lora_target_modules"},
      {"adapter: lora\nlora_target_linear: true\nlora_target_modules: [q_proj]", "keep one"},
      {"adapter: lora\nlora_target_linear: true\nlora_modules_to_save: [no_such]", "names no tensor"},
      {"adapter: lora\nlora_target_linear: true\nlora_model_dir: " + (dir_->path() / "nowhere").string(), "nowhere"},
  };
  int i = 0;
  for (const auto& [keys, needle] : bad) {
    const std::string name = "bad" + std::to_string(i++);
    r = run_difftx({"train", config(name, keys).string()});
    EXPECT_EQ(r.exit_code, 2) << keys;
    EXPECT_NE(r.err.find(needle), std::string::npos) << keys << "\n" << r.err;
    EXPECT_FALSE(fs::exists(dir_->path() / name / "adapter_model.safetensors")) << keys;
  }
}

}  // namespace
}  // namespace difftx
