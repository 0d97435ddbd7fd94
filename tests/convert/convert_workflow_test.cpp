// The convert-diff-transformer workflow on real directories: outputs, axolotl_config.yml, errors
// before any work, nothing half-written.
#include "convert/convert_workflow.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "config/axolotl_yaml.h"
#include "io/json_file.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

class WorkflowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::copy_tree(test::golden_dir() / "llama_gqa_tied_padded", dir_ / "base");
    fs::remove_all(dir_ / "base" / "bf16");
    test::write_text(dir_ / "base" / "tokenizer_config.json", R"({"add_bos_token": true})");
    test::write_text(dir_ / "base" / "tokenizer.json", R"({"version": "1.0"})");
    test::write_text(dir_ / "cfg.yml",
                     "# a comment yaml-cpp drops\n"
                     "base_model: " + (dir_ / "base").string() + "\n"
                     "output_dir: " + (dir_ / "out").string() + "\n"
                     "sequence_len: 128\n"
                     "plugins:\n  - other.Plugin\n"
                     "datasets:\n  - path: data.jsonl\n    type: alpaca\n");
  }
  ConvertRequest request() {
    ConvertRequest r;
    r.config_yaml = dir_ / "cfg.yml";
    return r;
  }
  TempDir dir_;
};

TEST_F(WorkflowTest, WritesTheSeedsOutputs) {
  ConvertResult r = convert_diff_transformer(request());
  EXPECT_EQ(r.files, (std::vector<std::string>{"axolotl_config.yml", "config.json", "model.safetensors",
                                                "tokenizer.json", "tokenizer_config.json"}));
  EXPECT_EQ(r.dtype, DType::F32);
  Model m = model_load(dir_ / "out");
  EXPECT_EQ(m.config().layout, AttentionLayout::llama_differential);
  EXPECT_EQ(test::read_text(dir_ / "out" / "tokenizer_config.json"), R"({"add_bos_token": true})");

  AxolotlYaml y = axolotl_yaml_load(dir_ / "out" / "axolotl_config.yml");
  EXPECT_EQ(y.string("base_model"), (dir_ / "out").string());
  EXPECT_EQ(y.boolean("diff_attention"), true);
  ASSERT_EQ(y.root["plugins"].size(), 2u);
  EXPECT_EQ(y.root["plugins"][0].as<std::string>(), "other.Plugin");
  EXPECT_EQ(y.root["plugins"][1].as<std::string>(), "axolotl_diff_transformer.plugin.DifferentialTransformerPlugin");
  std::vector<std::string> keys;
  for (const auto& kv : y.root) keys.push_back(kv.first.as<std::string>());
  EXPECT_EQ(keys, (std::vector<std::string>{"base_model", "output_dir", "sequence_len", "plugins", "datasets",
                                            "diff_attention"}));
  EXPECT_EQ(y.root["datasets"][0]["type"].as<std::string>(), "alpaca");
}

TEST_F(WorkflowTest, DtypeFollowsTheBaseUnlessAsked) {
  fs::remove_all(dir_ / "base");
  test::copy_tree(test::golden_dir() / "llama_gqa_tied_padded" / "bf16", dir_ / "base");
  EXPECT_EQ(convert_diff_transformer(request()).dtype, DType::BF16);
  auto req = request();
  req.overwrite = true;
  req.dtype = DType::F16;
  EXPECT_EQ(convert_diff_transformer(req).dtype, DType::F16);
  EXPECT_EQ(json_read_file(dir_ / "out" / "config.json")["torch_dtype"], "float16");
}

TEST_F(WorkflowTest, RefusesAnExistingOutputAndKeepsIt) {
  fs::create_directories(dir_ / "out");
  test::write_text(dir_ / "out" / "mine.txt", "keep");
  EXPECT_THROW(convert_diff_transformer(request()), FileError);
  EXPECT_EQ(test::read_text(dir_ / "out" / "mine.txt"), "keep");
}

TEST_F(WorkflowTest, ErrorsLeaveNothingBehind) {
  auto count = [&] {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_.path())) ++n;
    return n;
  };
  const size_t before = count();
  auto req = request();
  req.options.split_heads = true;
  req.options.zero_init = true;
  EXPECT_THROW(convert_diff_transformer(req), ConfigError);
  // A base whose weights are broken: the error comes after the staging directory exists.
  auto bytes = test::read_bytes(dir_ / "base" / "model.safetensors");
  bytes.erase(bytes.end() - 16, bytes.end());
  test::write_bytes(dir_ / "base" / "model.safetensors", bytes);
  EXPECT_THROW(convert_diff_transformer(request()), FileError);
  EXPECT_EQ(count(), before) << "no output or staging directory may remain";
}

TEST_F(WorkflowTest, SpecialTokensMustBeInTheVocabularyAndAreRecorded) {
  const fs::path tok = fs::path(DIFFTX_SHARED_DIR) / "fixtures" / "tokenizers" / "mistral";
  fs::copy_file(tok / "tokenizer.json", dir_ / "base" / "tokenizer.json", fs::copy_options::overwrite_existing);
  fs::copy_file(tok / "tokenizer_config.json", dir_ / "base" / "tokenizer_config.json",
                fs::copy_options::overwrite_existing);
  std::string cfg = test::read_text(dir_ / "cfg.yml");
  test::write_text(dir_ / "cfg.yml", cfg + "special_tokens:\n  pad_token: \"</s>\"\n");
  convert_diff_transformer(request());
  auto tc = json_read_file(dir_ / "out" / "tokenizer_config.json");
  EXPECT_EQ(tc["pad_token"], "</s>");
  EXPECT_EQ(tc["add_bos_token"], true);  // the rest is kept
  EXPECT_EQ(tc["bos_token"], "<s>");
  test::write_text(dir_ / "cfg.yml", cfg + "special_tokens:\n  pad_token: \"<|pad|>\"\n");
  auto req = request();
  req.output_dir = dir_ / "out2";
  try {
    convert_diff_transformer(req);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("<|pad|>"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("vocabulary"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "out2"));
  test::write_text(dir_ / "cfg.yml", cfg + "special_tokens:\n  colour: \"</s>\"\n");
  EXPECT_THROW(convert_diff_transformer(req), ConfigError);
}

TEST_F(WorkflowTest, BaseModelResolution) {
  EXPECT_EQ(resolve_local_dir("base_model", (dir_ / "base").string(), "c.yml"), dir_ / "base");
  try {
    resolve_local_dir("base_model", "HuggingFaceTB/SmolLM2-135M", "c.yml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("Hugging Face Hub id"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("download"), std::string::npos) << e.what();
  }
  try {
    resolve_local_dir("tokenizer_config", "/no/such/dir", "c.yml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer_config"), std::string::npos) << e.what();
  }
  test::write_text(dir_ / "cfg2.yml", "output_dir: x\n");
  auto req = request();
  req.config_yaml = dir_ / "cfg2.yml";
  EXPECT_THROW(convert_diff_transformer(req), ConfigError);
  test::write_text(dir_ / "cfg3.yml", "base_model: [1, 2]\n");
  req.config_yaml = dir_ / "cfg3.yml";
  try {
    convert_diff_transformer(req);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("\"base_model\""), std::string::npos) << e.what();
  }
  test::write_text(dir_ / "cfg4.yml", "base_model: a\n  bad: [indent\n");
  req.config_yaml = dir_ / "cfg4.yml";
  EXPECT_THROW(convert_diff_transformer(req), ConfigError);
}

}  // namespace
}  // namespace difftx
