// LoRA adapters in PEFT's format (model/lora.h) against the independent reference
// (tools/reference/lora_ref.py): the logits of every golden case with a lora/ folder, unmerged and
// merged, and the ways an adapter directory can be wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "golden_util.h"
#include "test_util.h"
#include "common/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "model/kv_cache.h"
#include "model/lora.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> lora_case_names() { return test::golden_cases_with("lora/adapter_config.json"); }

std::vector<float> reference_logits(const test::GoldenCase& g) {
  SafetensorsFile f(g.dir / "lora" / "logits.safetensors");
  std::vector<float> out(f.find("logits")->numel());
  f.load_f32(*f.find("logits"), out.data());
  return out;
}

class LoraGoldenTest : public ::testing::TestWithParam<std::string> {};

// Unmerged (the adapter beside the weights) against the reference; merged against unmerged.
TEST_P(LoraGoldenTest, UnmergedMatchesReferenceAndMergedMatchesUnmerged) {
  const test::GoldenCase g = test::golden_case_load(GetParam());
  const std::vector<float> expected = reference_logits(g);
  std::vector<float> plain, unmerged, merged;
  Model base = test::golden_model_load(g);
  base.forward(g.batch, nullptr, LogitsMode::all, plain, nullptr, g.options());

  Model model = test::golden_model_load(g);
  const LoraAdapter adapter = lora_load(g.dir / "lora", model);
  EXPECT_GT(adapter.modules.size(), 0u);
  model.attach_lora(adapter);
  EXPECT_TRUE(model.has_lora());
  model.forward(g.batch, nullptr, LogitsMode::all, unmerged, nullptr, g.options());
  const int64_t V = model.config().vocab_size;
  const double err = test::relative_error(g.batch, V, unmerged, expected);
  const double moved = test::relative_error(g.batch, V, plain, expected);
  EXPECT_LE(err, 1e-4);
  EXPECT_GE(moved, 0.05) << "the adapter changes the logits: the comparison can fail";

  Model folded = test::golden_model_load(g);
  lora_merge(adapter, folded);
  folded.forward(g.batch, nullptr, LogitsMode::all, merged, nullptr, g.options());
  const double merge_err = test::relative_error(g.batch, V, merged, unmerged);
  EXPECT_LE(merge_err, 1e-5);
  std::printf("[ lora     ] %-26s %zu modules r=%lld, unmerged vs reference %.3g, merged vs unmerged %.3g (base "
              "vs reference %.3g)\n",
              GetParam().c_str(), adapter.modules.size(), static_cast<long long>(adapter.config.r), err, merge_err,
              moved);
}

// With a KV cache (generation): the adapter applies to every new token, as without one.
TEST_P(LoraGoldenTest, CachedDecodingMatchesTheWholeSequence) {
  const test::GoldenCase g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g);
  model.attach_lora(lora_load(g.dir / "lora", model));
  // Row 0 of the case (never padded), positions as the case gives them.
  const int64_t T = g.batch.seq_len;
  TokenBatch row;
  row.seq_len = T;
  row.ids.assign(g.batch.ids.begin(), g.batch.ids.begin() + T);
  if (!g.batch.position_ids.empty()) row.position_ids.assign(g.batch.position_ids.begin(), g.batch.position_ids.begin() + T);
  std::vector<float> whole, step;
  model.forward(row, nullptr, LogitsMode::all, whole, nullptr, g.options());
  KVCache cache(model.config(), 1, T, model.backend());
  const int64_t V = model.config().vocab_size;
  double worst = 0;
  for (int64_t t = 0; t < T; ++t) {
    TokenBatch one;
    one.seq_len = 1;
    one.ids = {row.ids[t]};
    if (!row.position_ids.empty()) one.position_ids = {row.position_ids[t]};
    model.forward(one, &cache, LogitsMode::last, step, nullptr, g.options());
    for (int64_t v = 0; v < V; ++v) worst = std::max(worst, double(std::abs(step[v] - whole[t * V + v])));
  }
  EXPECT_LE(worst, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Cases, LoraGoldenTest, ::testing::ValuesIn(lora_case_names()),
                         [](const auto& info) { return info.param; });

TEST(LoraGolden, CasesCoverEveryLayout) {
  const std::vector<std::string> names = lora_case_names();
  for (const char* required : {"llama_mha", "llama_gqa_tied_padded", "diffllama_gqa", "diff_double_subln_gqa",
                               "diff_split_subln_gqa", "diff_v1_mha", "diff_v2_gqa_tied_padded"})
    EXPECT_NE(std::find(names.begin(), names.end(), required), names.end()) << required;
}

// A copy of llama_mha's adapter with one change, and the error it must give.
class LoraBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_ = test::golden_case_load("llama_mha");
    fs::copy(g_.dir / "lora", dir_.path() / "a", fs::copy_options::recursive);
  }
  fs::path adapter() const { return dir_.path() / "a"; }
  void set_config(const std::string& key, const ordered_json& value) {
    ordered_json j = json_read_file(adapter() / "adapter_config.json");
    j[key] = value;
    json_write_file(adapter() / "adapter_config.json", j);
  }
  // Rewrites the weights: each tensor through `edit` (name, shape, values), dropped when it returns false.
  template <class F>
  void rewrite_tensors(F edit) {
    std::vector<std::pair<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>> kept;
    {
      SafetensorsFile f(adapter() / "adapter_model.safetensors");
      for (const TensorInfo& t : f.tensors()) {
        std::string name = t.name;
        std::vector<int64_t> shape = t.shape;
        std::vector<float> values(t.numel());
        f.load_f32(t, values.data());
        if (edit(name, shape, values)) kept.push_back({name, {shape, values}});
      }
    }
    std::vector<TensorWrite> out;
    for (auto& [name, sv] : kept) out.push_back({name, sv.first, sv.second.data(), DType::F32});
    safetensors_write(adapter() / "adapter_model.safetensors", out);
  }
  std::string error() {
    Model model = test::golden_model_load(g_);
    try {
      lora_load(adapter(), model);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  test::GoldenCase g_;
  test::TempDir dir_;
};

TEST_F(LoraBadInputTest, RankZeroAndWrongTypes) {
  set_config("r", 0);
  EXPECT_NE(error().find("\"r\" (the LoRA rank) must be a whole number >= 1, got 0"), std::string::npos) << error();
  set_config("r", "4");
  EXPECT_NE(error().find("\"r\" must be a number, got a string"), std::string::npos) << error();
}

TEST_F(LoraBadInputTest, RankDisagreeingWithTheTensors) {
  set_config("r", 8);
  const std::string e = error();
  EXPECT_NE(e.find("lora_A.weight has shape [4, 48], expected [8, 48]"), std::string::npos) << e;
  set_config("r", nullptr);  // PEFT's default 8, said so
  EXPECT_NE(error().find("adapter_config.json has no \"r\", so r is PEFT's default 8"), std::string::npos) << error();
}

TEST_F(LoraBadInputTest, WrongTypesOfTextKeysAndHugeAlpha) {
  for (const char* key : {"peft_type", "bias"})
    for (const ordered_json& value : {ordered_json(5), ordered_json(), ordered_json::array()}) {
      set_config(key, value);
      EXPECT_NE(error().find(std::string("\"") + key + "\" must be a string, got"), std::string::npos) << error();
      set_config(key, key == std::string("bias") ? "none" : "LORA");
    }
  set_config("lora_alpha", 1e308);
  EXPECT_NE(error().find("\"lora_alpha\" must be a finite number of at most 1e6"), std::string::npos) << error();
  ordered_json j = json_read_file(adapter() / "adapter_config.json");  // no peft_type at all: said so
  j.erase("peft_type");
  json_write_file(adapter() / "adapter_config.json", j);
  EXPECT_NE(error().find("adapter_config.json: no \"peft_type\""), std::string::npos) << error();
}

TEST_F(LoraBadInputTest, NonFiniteValuesAreNamed) {
  rewrite_tensors([](std::string& name, std::vector<int64_t>&, std::vector<float>& values) {
    if (name == "base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight") values[3] = std::nanf("");
    return true;
  });
  EXPECT_NE(error().find("tensor \"base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight\" holds a "
                         "non-finite value (nan) at index 3"),
            std::string::npos)
      << error();
}

TEST_F(LoraBadInputTest, PathsThatAreNotAdapterDirectories) {
  auto load = [&](const fs::path& p) {
    Model model = test::golden_model_load(g_);
    try {
      lora_load(p, model);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(load(adapter() / "adapter_config.json").find("not a directory"), std::string::npos);
  EXPECT_NE(load(dir_.path() / "absent").find("no such adapter directory"), std::string::npos);
}

TEST_F(LoraBadInputTest, AdapterForAnotherBaseShape) {
  rewrite_tensors([](std::string& name, std::vector<int64_t>& shape, std::vector<float>& values) {
    if (name == "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight") {
      shape = {shape[0] * 2, shape[1]};
      values.resize(values.size() * 2);
    }
    return true;
  });
  const std::string e = error();
  EXPECT_NE(e.find("layers.1.self_attn.v_proj.lora_B.weight has shape [96, 4], expected [48, 4] ([out_features, r] "
                   "of model.layers.1.self_attn.v_proj.weight [48, 48])"),
            std::string::npos)
      << e;
}

TEST_F(LoraBadInputTest, UnknownModuleAndMissingHalf) {
  rewrite_tensors([](std::string& name, std::vector<int64_t>&, std::vector<float>&) {
    if (name.find("layers.0.self_attn.q_proj") != std::string::npos) name.replace(name.find("q_proj"), 6, "qq_proj");
    return true;
  });
  set_config("target_modules", {"q_proj", "k_proj", "v_proj", "o_proj", "qq_proj"});  // the config names it
  EXPECT_NE(error().find("module \"model.layers.0.self_attn.qq_proj\" is not a Linear layer of a decoder layer"),
            std::string::npos)
      << error();
  rewrite_tensors([](std::string& name, std::vector<int64_t>&, std::vector<float>&) {
    return name.find("layers.0.self_attn.qq_proj.lora_B") == std::string::npos;
  });
  EXPECT_NE(error().find("module \"model.layers.0.self_attn.qq_proj\" has lora_A but no lora_B"), std::string::npos)
      << error();
}

// target_modules and the weights of one adapter agree (PEFT adapts only the modules the list
// names): weights for a module the list does not name are a mixed-up adapter.
TEST_F(LoraBadInputTest, WeightsOfModulesTargetModulesDoesNotNameAreRefused) {
  for (const ordered_json& targets : {ordered_json{"nonsense"}, ordered_json::array(), ordered_json{"q_proj", "v_proj"}}) {
    set_config("target_modules", targets);
    EXPECT_NE(error().find("has LoRA tensors, but adapter_config.json's target_modules [" +
                           (targets.empty() ? std::string() : targets[0].get<std::string>())),
              std::string::npos)
        << targets.dump() << ": " << error();
  }
  // Full module paths match too (PEFT: the name, or a suffix after a dot).
  set_config("target_modules", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"});
  EXPECT_EQ(error(), "");
  // A string is a regular expression to PEFT: not checked here.
  set_config("target_modules", ".*\\.(q|k|v|o)_proj");
  EXPECT_EQ(error(), "");
}

TEST_F(LoraBadInputTest, UnsupportedVariantsAreNamed) {
  for (auto [key, value, part] : std::vector<std::tuple<std::string, ordered_json, std::string>>{
           {"use_dora", true, "DoRA adapters are not supported"},
           {"peft_type", "PREFIX_TUNING", "peft_type \"PREFIX_TUNING\": only LoRA adapters"},
           {"rank_pattern", ordered_json{{"q_proj", 8}}, "\"rank_pattern\": per-module ranks"},
           {"fan_in_fan_out", true, "GPT-2's Conv1D"},
           {"bias", "all", "bias \"all\""}}) {
    fs::remove_all(adapter());
    fs::copy(g_.dir / "lora", adapter(), fs::copy_options::recursive);
    set_config(key, value);
    EXPECT_NE(error().find(part), std::string::npos) << key << ": " << error();
  }
  fs::remove_all(adapter());
  fs::copy(g_.dir / "lora", adapter(), fs::copy_options::recursive);
  fs::remove(adapter() / "adapter_model.safetensors");
  EXPECT_NE(error().find("no adapter_model.safetensors"), std::string::npos) << error();
  fs::remove(adapter() / "adapter_config.json");
  EXPECT_NE(error().find("no adapter_config.json"), std::string::npos) << error();
}

TEST_F(LoraBadInputTest, SavedModuleOfAnotherShapeOrName) {
  rewrite_tensors([](std::string& name, std::vector<int64_t>& shape, std::vector<float>& values) {
    if (name == "base_model.model.lm_head.weight") {
      shape = {shape[0] - 1, shape[1]};
      values.resize(values.size() - static_cast<size_t>(shape[1]));
    }
    return true;
  });
  EXPECT_NE(error().find("\"base_model.model.lm_head.weight\" has shape [95, 48], but the model's lm_head.weight is "
                         "[96, 48]"),
            std::string::npos)
      << error();
  rewrite_tensors([](std::string& name, std::vector<int64_t>&, std::vector<float>&) {
    if (name == "base_model.model.lm_head.weight") name = "lm_head.weight";
    return true;
  });
  EXPECT_NE(error().find("does not start with \"base_model.model.\""), std::string::npos) << error();
}

}  // namespace
}  // namespace difftx
