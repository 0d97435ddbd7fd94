// Autoregressive generation with a Model: prefill the prompt, then one token at a time, with the
// KV cache (default) or by re-running the whole sequence each step (use_cache = false, as the
// seed's --debug does); both give the same tokens for greedy decoding.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "infer/sampling.h"
#include "model/model.h"

namespace difftx {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingOptions sampling;
  bool use_cache = true;
  std::vector<int32_t> stop_ids;  // generation ends after producing one of these (EOS)
};

struct GenerateResult {
  std::vector<int32_t> new_ids;   // generated ids (the stop id included when reached)
  double prompt_seconds = 0;      // prefill
  double generate_seconds = 0;    // every step after the prefill
  bool stopped = false;           // ended on a stop id
};

// Calls on_token(id) for each new id as soon as it is chosen. Throws ShapeError on an empty prompt
// or ids outside the vocabulary.
GenerateResult generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token = nullptr);

// config.json's eos_token_id(s) plus the tokenizer's EOS id, when set.
std::vector<int32_t> stop_ids_for(const ModelConfig& config, std::optional<int32_t> tokenizer_eos);

}  // namespace difftx
