// The differential-attention monitoring keys of spec §6 that a metrics.jsonl record must hold for
// its monitored layers, shared by the CLI tests that check them.
#pragma once

#include <string>
#include <vector>

#include <fmt/format.h>

#include "io/json_file.h"

namespace difftx::test {

// The spec §6 keys (per monitored layer and aggregated over all layers) missing from `row`.
inline std::vector<std::string> missing_monitor_keys(const ordered_json& row, const std::vector<int>& layers) {
  std::vector<std::string> missing;
  auto need = [&](const std::string& key) {
    if (!row.contains(key)) missing.push_back(key);
  };
  for (int layer : layers)
    for (const char* k : {"lambda_q1_norm", "lambda_k1_norm", "lambda_q2_norm", "lambda_k2_norm", "lambda1", "lambda2",
                          "lambda_init", "lambda_full", "attn1_mean", "attn2_mean", "attn1_std", "attn2_std"})
      need(fmt::format("layer_{}/{}", layer, k));
  for (const char* k : {"lambda_q1_norm", "lambda_q2_norm", "lambda_k1_norm", "lambda_k2_norm", "lambda1", "lambda2",
                        "lambda_full"}) {
    need(fmt::format("aggregate/{}_mean", k));
    need(fmt::format("aggregate/{}_std", k));
  }
  return missing;
}

}  // namespace difftx::test
