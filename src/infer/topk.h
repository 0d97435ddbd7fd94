// The k largest logits of a row, for debugging output and greedy decoding.
#pragma once

#include <cstdint>
#include <vector>

namespace difftx {

struct TokenScore {
  int32_t id;
  float logit;
};

// The k highest logits of logits[0, n) in descending order (ties: lower id first); k is capped at n.
std::vector<TokenScore> logits_topk(const float* logits, int64_t n, int64_t k);

}  // namespace difftx
