// Loading the golden cases written by tools/reference (tests/golden/<case>/).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "model/model.h"

namespace difftx::test {

struct GoldenCase {
  std::string name;
  std::filesystem::path dir;
  TokenBatch batch;                  // ids, attention_mask, position_ids from inputs.json
  std::vector<float> logits;         // [B, T, V] from the F32 weights
  std::vector<float> logits_bf16;    // [B, T, V] from the BF16-rounded weights
  float mix = 1.0f;                  // diff_attn_mix for llama-differential cases (docs/FORMATS.md §3)
  // The forward options the case's goldens were made with (its mix).
  ForwardOptions options() const { return {mix}; }
};

// Loads the case's model (the F32 one, or bf16/ when bf16); forward it with g.options().
Model golden_model_load(const GoldenCase& g, bool bf16 = false);

std::vector<std::string> golden_case_names();  // every folder of tests/golden, sorted
// The cases that have `file` (a path relative to the case's folder, e.g. "lora/grads.safetensors").
std::vector<std::string> golden_cases_with(const std::string& file);
GoldenCase golden_case_load(const std::string& name);

// The cases with training goldens (train.json), and next-token targets from their labels
// (targets[b, t] = labels[b, t + 1], -100 at the end of each row).
std::vector<std::string> training_case_names();
std::vector<int32_t> next_token_targets(const std::filesystem::path& train_json);

// max |a - b| / max |b| over the positions whose attention_mask is 1.
double relative_error(const TokenBatch& batch, int64_t vocab, const std::vector<float>& a, const std::vector<float>& b);

}  // namespace difftx::test
