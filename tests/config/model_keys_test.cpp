// The shared reading of base_model / tokenizer_config / special_tokens (config/model_keys.h), and
// that convert and train both go through it.
#include "config/model_keys.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/error.h"
#include "config/train_config.h"
#include "test_util.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;

class ModelKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "model");
    fs::create_directories(dir_ / "tok");
  }
  fs::path yaml(const std::string& text) {
    const fs::path p = dir_ / "cfg.yml";
    test::write_text(p, text);
    return p;
  }
  // The ConfigError message of reading `text`, or "" when it reads.
  std::string error_of(const std::string& text) {
    try {
      model_keys_read(axolotl_yaml_load(yaml(text)));
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  test::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
};

TEST_F(ModelKeysTest, ReadsTheKeysInFileOrderAndResolvesTheDirectories) {
  const fs::path p = yaml("base_model: " + (dir_ / "model").string() + "\ntokenizer_config: " + (dir_ / "tok").string() +
                         "\nspecial_tokens:\n  pad_token: \"<pad>\"\n  bos_token: \"<s>\"\n");
  const ModelKeys k = model_keys_read(axolotl_yaml_load(p));
  EXPECT_EQ(k.base_model, (dir_ / "model").string());
  EXPECT_EQ(k.tokenizer_config, (dir_ / "tok").string());
  ASSERT_EQ(k.special_tokens.size(), 2u);
  EXPECT_EQ(k.special_tokens[0], (std::pair<std::string, std::string>{"pad_token", "<pad>"}));
  EXPECT_EQ(k.special_tokens[1], (std::pair<std::string, std::string>{"bos_token", "<s>"}));
  const ModelKeyDirs d = model_keys_resolve(k, p);
  EXPECT_TRUE(fs::equivalent(d.model_dir, dir_ / "model"));
  EXPECT_TRUE(fs::equivalent(d.tokenizer_dir, dir_ / "tok"));
  // Without tokenizer_config the tokenizer is the model's.
  const ModelKeys plain = model_keys_read(axolotl_yaml_load(yaml("base_model: " + (dir_ / "model").string() + "\n")));
  EXPECT_TRUE(fs::equivalent(model_keys_resolve(plain, p).tokenizer_dir, dir_ / "model"));
}

TEST_F(ModelKeysTest, BadKeysNameTheFileAndTheKey) {
  const std::string base = "base_model: " + (dir_ / "model").string() + "\n";
  EXPECT_NE(error_of("tokenizer_config: x\n").find("required key \"base_model\" is missing"), std::string::npos);
  EXPECT_NE(error_of(base + "special_tokens: [a, b]\n").find("key \"special_tokens\" must be a mapping"),
            std::string::npos);
  const std::string colour = error_of(base + "special_tokens:\n  colour: \"</s>\"\n");
  EXPECT_NE(colour.find("special_tokens.colour is not a special token name"), std::string::npos) << colour;
  EXPECT_NE(colour.find("cfg.yml"), std::string::npos) << colour;
  EXPECT_NE(error_of(base + "special_tokens:\n  pad_token: [a]\n").find("special_tokens.pad_token must be a token string"),
            std::string::npos);
  EXPECT_EQ(error_of(base + "special_tokens:\n  eos_token: \"</s>\"\n"), "");
}

// What PyYAML's safe_load (axolotl's reader) would not read as this one document: refused with
// the file and the line, never a crash.
TEST_F(ModelKeysTest, CyclicAliasesAndSeveralDocumentsAreRefused) {
  const std::string base = "base_model: " + (dir_ / "model").string() + "\n";
  for (const char* cycle : {"x: &x [*x]\n", "x: &x {a: *x}\n", "x: &x [[[*x]]]\n"}) {
    const std::string e = error_of(base + cycle);
    EXPECT_NE(e.find("cfg.yml:2: nested more than 200 levels deep"), std::string::npos) << cycle << ": " << e;
  }
  const std::string two = error_of(base + "---\nbase_model: elsewhere\n");
  EXPECT_NE(two.find("cfg.yml:2: a second YAML document starts here"), std::string::npos) << two;
  // yaml-cpp reads endless empty documents from some malformed text (YAML::LoadAll never returned).
  EXPECT_NE(error_of(",#$axo`# %").find("a second YAML document"), std::string::npos);
  EXPECT_NE(error_of(base + "---\n").find("a second YAML document"), std::string::npos);  // PyYAML refuses it too
  EXPECT_EQ(error_of("---\n" + base), "");
  EXPECT_EQ(error_of(base + "...\n"), "");
}

// train reads the same keys the same way: a name convert rejects, train rejects too.
TEST_F(ModelKeysTest, TrainingConfigsShareTheReading) {
  const std::string cfg = "base_model: " + (dir_ / "model").string() +
                          "\ndatasets:\n  - path: data.txt\n    type: completion\nspecial_tokens:\n  colour: \"x\"\n";
  try {
    train_config_load(yaml(cfg));
    FAIL() << "an unknown special token name was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("special_tokens.colour is not a special token name"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace difftx
