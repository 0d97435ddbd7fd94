#include "io/model_config.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "common/error.h"
#include "test_util.h"

namespace difftx {
namespace {

ordered_json base_llama() {
  return ordered_json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "hidden_act": "silu",
    "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
    "custom_key": {"kept": [1, 2]}})");
}

std::string error_of(const ordered_json& j) {
  try {
    model_config_parse(j, "conf/config.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ParsesLlama) {
  ModelConfig c = model_config_parse(base_llama(), "config.json");
  EXPECT_EQ(c.family, ModelFamily::llama);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.q_dim(), 64);
  EXPECT_EQ(c.kv_dim(), 32);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_scaling.type, RopeType::none);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_FALSE(c.qkv_bias());
}

TEST(ModelConfig, DefaultsFollowTransformers) {
  auto j = base_llama();
  j.erase("num_key_value_heads");
  j.erase("rms_norm_eps");
  j.erase("rope_theta");
  j.erase("max_position_embeddings");
  ModelConfig c = model_config_parse(j, "config.json");
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  j["model_type"] = "mistral";
  EXPECT_EQ(model_config_parse(j, "c").sliding_window, 4096);  // MistralConfig default
  j["sliding_window"] = nullptr;
  EXPECT_EQ(model_config_parse(j, "c").sliding_window, 0);
  j["model_type"] = "qwen3";
  EXPECT_EQ(model_config_parse(j, "c").head_dim, 128);  // Qwen3Config default
}

TEST(ModelConfig, FamilyFeatures) {
  auto j = base_llama();
  j["model_type"] = "qwen2";
  ModelConfig q2 = model_config_parse(j, "c");
  EXPECT_TRUE(q2.qkv_bias());
  EXPECT_FALSE(q2.o_bias());
  j["model_type"] = "qwen3";
  j["attention_bias"] = true;
  j["head_dim"] = 32;
  ModelConfig q3 = model_config_parse(j, "c");
  EXPECT_TRUE(q3.qk_norm());
  EXPECT_TRUE(q3.o_bias());
  EXPECT_EQ(q3.q_dim(), 128);
  j = base_llama();
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  ModelConfig l = model_config_parse(j, "c");
  EXPECT_TRUE(l.qkv_bias() && l.o_bias() && l.mlp_bias);
}

TEST(ModelConfig, RopeSpellings) {
  auto j = base_llama();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(model_config_parse(j, "c").rope_scaling.type, RopeType::linear);
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto c = model_config_parse(j, "c");
  EXPECT_EQ(c.rope_scaling.type, RopeType::llama3);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  c = model_config_parse(j, "c");
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 256);  // defaults to max_position_embeddings
  EXPECT_TRUE(c.rope_scaling.truncate);
  // transformers v5: rope_parameters holds the type and theta.
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "dynamic"}, {"rope_theta", 500000.0}, {"factor", 2.0}};
  c = model_config_parse(j, "c");
  EXPECT_EQ(c.rope_scaling.type, RopeType::dynamic);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}};
  EXPECT_EQ(model_config_parse(j, "c").rope_scaling.type, RopeType::none);
}

TEST(ModelConfig, EosMayBeAList) {
  auto j = base_llama();
  j["vocab_size"] = 128256;
  j["eos_token_id"] = {128001, 128008, 128009};
  EXPECT_EQ(model_config_parse(j, "c").eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  j["eos_token_id"] = "2";
  EXPECT_NE(error_of(j).find("eos_token_id"), std::string::npos);
  j["eos_token_id"] = 128256;
  EXPECT_NE(error_of(j).find("outside the vocabulary"), std::string::npos);
  j["eos_token_id"] = 2;
  j["pad_token_id"] = 200000;
  EXPECT_NE(error_of(j).find("\"pad_token_id\""), std::string::npos);
  // A negative id is none (the first Llama conversions have "pad_token_id": -1); the file keeps it.
  j["pad_token_id"] = -1;
  j["bos_token_id"] = -1;
  j["eos_token_id"] = {2, -1};
  const ModelConfig none = model_config_parse(j, "c");
  EXPECT_FALSE(none.pad_token_id);
  EXPECT_FALSE(none.bos_token_id);
  EXPECT_EQ(none.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(none.raw["pad_token_id"], -1);
}

TEST(ModelConfig, UnknownModelTypeListsSupported) {
  auto j = base_llama();
  j["model_type"] = "gpt2";
  std::string e = error_of(j);
  EXPECT_NE(e.find("gpt2"), std::string::npos) << e;
  EXPECT_NE(e.find("llama, mistral, qwen2, qwen3"), std::string::npos) << e;
  EXPECT_NE(e.find("conf/config.json"), std::string::npos) << e;
  j.erase("model_type");
  EXPECT_NE(error_of(j).find("model_type"), std::string::npos);
}

// A differential config's base family must be a base family, also when it names a layout.
TEST(ModelConfig, BaseModelTypeIsNamedWhenItIsNotAFamily) {
  for (const char* layout : {"diff-v1", "diff-v2", "llama-differential"}) {
    auto j = base_llama();
    j["model_type"] = layout;
    j["base_model_type"] = layout;
    const std::string e = error_of(j);
    EXPECT_NE(e.find(fmt::format("base_model_type \"{}\" is not supported (supported: llama, mistral, qwen2, qwen3)",
                                 layout)),
              std::string::npos)
        << e;
  }
  auto j = base_llama();
  j["model_type"] = "diff-v2";
  EXPECT_EQ(model_config_parse(j, "c").layout, AttentionLayout::diff_v2);
  EXPECT_EQ(model_config_parse(j, "c").q_proj_rows(), 2 * 64);
}

TEST(ModelConfig, UnknownRopeTypeListsSupported) {
  auto j = base_llama();
  j["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 2.0}};
  std::string e = error_of(j);
  EXPECT_NE(e.find("longrope"), std::string::npos) << e;
  EXPECT_NE(e.find("default, linear, dynamic, llama3, yarn"), std::string::npos) << e;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  EXPECT_NE(error_of(j).find("low_freq_factor"), std::string::npos);
  j["rope_scaling"] = {{"rope_type", "linear"}};
  EXPECT_NE(error_of(j).find("factor"), std::string::npos);
}

TEST(ModelConfig, WrongTypesNameTheKey) {
  for (auto [key, value] : std::vector<std::pair<std::string, ordered_json>>{
           {"hidden_size", "64"}, {"num_hidden_layers", 2.5}, {"rms_norm_eps", "small"},
           {"tie_word_embeddings", 1}, {"rope_scaling", 3}, {"head_dim", true}}) {
    auto j = base_llama();
    j[key] = value;
    std::string e = error_of(j);
    EXPECT_NE(e.find("\"" + key + "\""), std::string::npos) << key << ": " << e;
  }
}

TEST(ModelConfig, RejectsInconsistentShapes) {
  auto j = base_llama();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("multiple of num_key_value_heads"), std::string::npos);
  j = base_llama();
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("silu"), std::string::npos);
  j = base_llama();
  j["hidden_size"] = 0;
  EXPECT_NE(error_of(j).find("hidden_size"), std::string::npos);
  j = base_llama();
  j.erase("vocab_size");
  EXPECT_NE(error_of(j).find("vocab_size"), std::string::npos);
  j = base_llama();
  j["head_dim"] = 15;
  EXPECT_NE(error_of(j).find("even"), std::string::npos);
  j = base_llama();
  j["model_type"] = "qwen2";
  j["use_sliding_window"] = true;
  EXPECT_NE(error_of(j).find("use_sliding_window"), std::string::npos);
}

TEST(ModelConfig, AbsurdSizesAreRefusedBeforeAnyAllocation) {
  for (auto [key, value] : std::vector<std::pair<std::string, int64_t>>{
           {"num_hidden_layers", 1000000000}, {"hidden_size", 1000000000000}, {"vocab_size", 1 << 30},
           {"intermediate_size", 1 << 28}, {"num_attention_heads", 1 << 20}}) {
    auto j = base_llama();
    j[key] = value;
    std::string e = error_of(j);
    EXPECT_NE(e.find("implausibly large"), std::string::npos) << key << ": " << e;
  }
  auto j = base_llama();
  j["hidden_size"] = 9223372036854775808ull;
  EXPECT_NE(error_of(j).find("out of range"), std::string::npos);
}

TEST(ModelConfig, SaveKeepsEveryKeyInOrder) {
  test::TempDir dir;
  auto j = base_llama();
  ModelConfig c = model_config_parse(j, "c");
  c.set_dtype(DType::F32);
  model_config_save(dir / "config.json", c);
  ModelConfig back = model_config_load(dir / "config.json");
  auto expected = j;
  expected["torch_dtype"] = "float32";
  EXPECT_EQ(back.raw.dump(), expected.dump());
  // transformers v5 spells it "dtype"; that key is kept.
  j.erase("torch_dtype");
  j["dtype"] = "bfloat16";
  ModelConfig v5 = model_config_parse(j, "c");
  v5.set_dtype(DType::F16);
  EXPECT_EQ(v5.raw["dtype"], "float16");
  EXPECT_FALSE(v5.raw.contains("torch_dtype"));
  // Both keys (files edited by hand or by two versions): both name what is written.
  j["torch_dtype"] = "float32";
  ModelConfig both = model_config_parse(j, "c");
  both.set_dtype(DType::F16);
  EXPECT_EQ(both.raw["dtype"], "float16");
  EXPECT_EQ(both.raw["torch_dtype"], "float16");
  // Neither: torch_dtype.
  j.erase("torch_dtype");
  j.erase("dtype");
  ModelConfig neither = model_config_parse(j, "c");
  neither.set_dtype(DType::BF16);
  EXPECT_EQ(neither.raw["torch_dtype"], "bfloat16");
  EXPECT_FALSE(neither.raw.contains("dtype"));
}

TEST(ModelConfig, MissingFileIsAFileError) {
  test::TempDir dir;
  EXPECT_THROW(model_config_load(dir / "config.json"), FileError);
  test::write_text(dir / "config.json", "{not json");
  EXPECT_THROW(model_config_load(dir / "config.json"), FileError);
}

TEST(ModelConfig, EveryGoldenConfigParses) {
  int n = 0;
  for (auto& entry : std::filesystem::directory_iterator(test::golden_dir())) {
    if (!entry.is_directory()) continue;
    ModelConfig c = model_config_load(entry.path() / "config.json");
    EXPECT_GT(c.num_hidden_layers, 0);
    ++n;
  }
  EXPECT_GE(n, 11);
}

}  // namespace
}  // namespace difftx
