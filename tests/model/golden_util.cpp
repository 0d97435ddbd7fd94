#include "golden_util.h"

#include <algorithm>
#include <cmath>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace difftx::test {

std::vector<std::string> golden_case_names() {
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(golden_dir()))
    if (e.is_directory()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> golden_cases_with(const std::string& file) {
  std::vector<std::string> out;
  for (const std::string& name : golden_case_names())
    if (fs::exists(golden_dir() / name / file)) out.push_back(name);
  return out;
}

GoldenCase golden_case_load(const std::string& name) {
  GoldenCase g;
  g.name = name;
  g.dir = golden_dir() / name;
  auto inputs = json_read_file(g.dir / "inputs.json");
  const auto& ids = inputs["input_ids"];
  g.batch.batch = static_cast<int64_t>(ids.size());
  g.batch.seq_len = static_cast<int64_t>(ids[0].size());
  for (size_t b = 0; b < ids.size(); ++b)
    for (size_t t = 0; t < ids[b].size(); ++t) {
      g.batch.ids.push_back(ids[b][t].get<int32_t>());
      g.batch.attention_mask.push_back(inputs["attention_mask"][b][t].get<uint8_t>());
      g.batch.position_ids.push_back(inputs["position_ids"][b][t].get<int64_t>());
    }
  if (inputs.contains("mix")) g.mix = inputs["mix"].get<float>();
  SafetensorsFile logits(g.dir / "logits.safetensors");
  for (auto [key, out] : {std::pair{"logits", &g.logits}, {"logits_bf16", &g.logits_bf16}}) {
    const TensorInfo* t = logits.find(key);
    out->resize(t->numel());
    logits.load_f32(*t, out->data());
  }
  return g;
}

Model golden_model_load(const GoldenCase& g, bool bf16) {
  return model_load(bf16 ? g.dir / "bf16" : g.dir);
}

std::vector<std::string> training_case_names() { return golden_cases_with("train.json"); }

std::vector<int32_t> next_token_targets(const fs::path& train_json) {
  auto train = json_read_file(train_json);
  std::vector<int32_t> targets;
  for (const auto& row : train["labels"])
    for (size_t t = 0; t < row.size(); ++t) targets.push_back(t + 1 < row.size() ? row[t + 1].get<int32_t>() : -100);
  return targets;
}

double relative_error(const TokenBatch& batch, int64_t vocab, const std::vector<float>& a, const std::vector<float>& b) {
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < batch.batch * batch.seq_len; ++i) {
    if (!batch.attention_mask.empty() && batch.attention_mask[i] == 0) continue;
    for (int64_t v = 0; v < vocab; ++v) {
      max_diff = std::max(max_diff, std::abs(double(a[i * vocab + v]) - b[i * vocab + v]));
      max_ref = std::max(max_ref, std::abs(double(b[i * vocab + v])));
    }
  }
  return max_diff / max_ref;
}

}  // namespace difftx::test
