#include "infer/topk.h"

#include <algorithm>

namespace difftx {

std::vector<TokenScore> logits_topk(const float* logits, int64_t n, int64_t k) {
  k = std::clamp<int64_t>(k, 0, n);
  std::vector<TokenScore> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[i] = {static_cast<int32_t>(i), logits[i]};
  auto better = [](const TokenScore& a, const TokenScore& b) {
    return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
  };
  std::partial_sort(all.begin(), all.begin() + k, all.end(), better);
  all.resize(static_cast<size_t>(k));
  return all;
}

}  // namespace difftx
