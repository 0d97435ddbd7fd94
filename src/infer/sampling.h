// Choosing the next token from logits, as transformers' generate does: greedy, or sampling after
// the logits warpers in transformers' order (temperature, then top-k, then top-p).
#pragma once

#include <cstdint>
#include <random>

namespace difftx {

struct SamplingOptions {
  float temperature = 0.0f;  // 0: greedy (argmax, lowest id on ties); > 0: sample from softmax(logits / T)
  int64_t top_k = 0;         // keep the k most likely tokens (0: all)
  float top_p = 1.0f;        // keep the smallest set whose probability reaches p (1: all); at least one token
  uint64_t seed = 0;
};

class Sampler {
 public:
  // Throws ConfigError for temperature < 0, top_k < 0 or top_p outside (0, 1].
  explicit Sampler(const SamplingOptions& options);
  int32_t next(const float* logits, int64_t vocab);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace difftx
