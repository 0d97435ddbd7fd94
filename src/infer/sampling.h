// Choosing the next token from logits, as transformers' generate does: greedy, or sampling after
// the logits processors and warpers in transformers' order:
//   1. logit_bias: logits[id] += bias (OpenAI's logit_bias; transformers' sequence_bias for single
//      tokens), each bias in [-100, 100];
//   2. repetition_penalty p (transformers' RepetitionPenaltyLogitsProcessor, from CTRL, Keskar et
//      al. 2019): for each distinct id in the prompt and the ids generated so far, a logit x
//      becomes x * p when x < 0 and x / p otherwise; p in [0.01, 100] (1: off; transformers takes
//      any p > 0, but beyond these bounds a logit overflows or every seen one becomes 0);
//   3. frequency_penalty a_f and presence_penalty a_p (OpenAI's API reference, "parameter details"):
//      logits[id] -= c[id] * a_f + (c[id] > 0) * a_p, where c[id] counts the times id was generated
//      so far (the prompt does not count, as in OpenAI and vLLM); each in [-2, 2] (0: off);
//   4. temperature (0: greedy, the argmax of the processed logits), then top-k, then top-p.
// The processed logits are a copy; the caller's row is left as it is.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace difftx {

inline constexpr float kMinRepetitionPenalty = 0.01f, kMaxRepetitionPenalty = 100.0f;

struct SamplingOptions {
  float temperature = 0.0f;  // 0: greedy (argmax, lowest id on ties); > 0: sample from softmax(logits / T)
  int64_t top_k = 0;         // keep the k most likely tokens (0: all)
  float top_p = 1.0f;        // keep the smallest set whose probability reaches p (1: all); at least one token
  uint64_t seed = 0;
  float repetition_penalty = 1.0f;  // [0.01, 100]; 1: off
  float frequency_penalty = 0.0f;   // [-2, 2]; 0: off
  float presence_penalty = 0.0f;    // [-2, 2]; 0: off
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id >= 0, bias in [-100, 100])
};

class Sampler {
 public:
  // Throws ConfigError naming the option for temperature < 0, top_k < 0, top_p outside (0, 1],
  // repetition_penalty outside [0.01, 100], a frequency or presence penalty outside [-2, 2], a bias outside
  // [-100, 100] or a negative biased id.
  explicit Sampler(const SamplingOptions& options);
  // The prompt's ids, which repetition_penalty counts as seen (call once, before the first next()).
  void prime(std::span<const int32_t> prompt);
  // The next id for one row of `vocab` logits; the id is remembered for the penalties. Throws
  // ShapeError for a logit_bias id outside [0, vocab).
  int32_t next(const float* logits, int64_t vocab);
  // True when next() is the argmax of the logits as given (greedy, nothing changes them): the
  // caller may then take the argmax where the logits are, without copying the row to the host.
  bool plain_argmax() const { return options_.temperature == 0.0f && !processes_; }

 private:
  void process(float* logits, int64_t vocab) const;

  SamplingOptions options_;
  bool processes_ = false;  // any of bias or penalties is on
  std::mt19937_64 rng_;
  std::vector<float> processed_;
  std::unordered_set<int32_t> seen_;                // prompt and generated ids (repetition_penalty)
  std::unordered_map<int32_t, int64_t> generated_;  // id -> times generated (frequency/presence)
};

}  // namespace difftx
