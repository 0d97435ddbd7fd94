// The fixture of the `difftx train` / `evaluate` CLI tests: a tiny Mistral made by `difftx init`
// with the real Mistral tokenizer ("base"), its default conversion ("diff"), 150 lines of real
// English text, and configs built from one set of keys.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "io/json_file.h"
#include "test_util.h"

namespace difftx::test {

namespace fs = std::filesystem;

class TrainCliFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const fs::path d = dir_->path();
    ASSERT_EQ(run_difftx({"init", "--config", (source_dir() / "examples/tiny-mistral/config.json").string(),
                          "--out", (d / "base").string(), "--seed", "1"}).exit_code, 0);
    const fs::path tok = fs::path(DIFFTX_SHARED_DIR) / "fixtures/tokenizers/mistral";
    fs::copy_file(tok / "tokenizer.json", d / "base" / "tokenizer.json");
    fs::copy_file(tok / "tokenizer_config.json", d / "base" / "tokenizer_config.json");
    write_text(d / "conv.yml", "base_model: " + (d / "base").string() + "\noutput_dir: " + (d / "diff").string() + "\n");
    ASSERT_EQ(run_difftx({"convert-diff-transformer", (d / "conv.yml").string()}).exit_code, 0);
    // 150 lines of real English text as a completion dataset.
    std::ifstream in(fs::path(DIFFTX_SHARED_DIR) / "corpora/dasher-english-gb.txt");
    std::string line, text;
    for (int i = 0; i < 150 && std::getline(in, line); ++i) text += line + "\n";
    write_text(d / "text.txt", text);
  }
  static void TearDownTestSuite() { delete dir_; }

  // The base training config; `extra` lines "key: value" replace the key or are appended.
  fs::path config(const std::string& name, const std::string& extra, const std::string& model = "diff") {
    const fs::path d = dir_->path();
    std::vector<std::pair<std::string, std::string>> keys = {
        {"base_model", (d / model).string()},
        {"datasets", "\n  - path: " + (d / "text.txt").string() + "\n    type: completion"},
        {"val_set_size", "0.1"}, {"sequence_len", "64"}, {"sample_packing", "true"}, {"micro_batch_size", "2"},
        {"gradient_accumulation_steps", "2"}, {"max_steps", "8"}, {"learning_rate", "0.003"}, {"warmup_steps", "2"},
        {"logging_steps", "1"}, {"eval_steps", "4"}, {"save_steps", "3"}, {"save_total_limit", "2"}, {"seed", "5"},
        {"output_dir", (d / name).string()}, {"diff_attention", "true"}, {"diff_attn_log_every", "2"},
        {"diff_attn_num_monitor_layers", "2"}, {"diff_attn_warmup_steps", "4"}};
    size_t pos = 0;
    while (pos < extra.size()) {
      size_t end = extra.find('\n', pos);
      if (end == std::string::npos) end = extra.size();
      const std::string line = extra.substr(pos, end - pos);
      pos = end + 1;
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      const std::string key = line.substr(0, colon), value = line.substr(colon + 2);
      auto it = std::find_if(keys.begin(), keys.end(), [&](const auto& kv) { return kv.first == key; });
      if (it != keys.end()) it->second = value;
      else keys.emplace_back(key, value);
    }
    std::string text;
    for (const auto& [k, v] : keys) text += k + ": " + v + "\n";
    write_text(d / (name + ".yml"), text);
    return d / (name + ".yml");
  }
  static std::vector<ordered_json> metrics(const fs::path& out) {
    std::vector<ordered_json> rows;
    std::ifstream in(out / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) rows.push_back(json_parse(line, "metrics.jsonl"));
    return rows;
  }
  static inline TempDir* dir_ = nullptr;
};

}  // namespace difftx::test
