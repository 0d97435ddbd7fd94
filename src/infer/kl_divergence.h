// How far a model's next-token distributions are from a base model's on the same text: the
// conversion-quality report (the statistics llama.cpp's `llama-perplexity --kl-divergence` gives
// for a quantised model against its base). For every scored position of the sliding windows of
// perplexity.h, with P the base model's next-token distribution and Q the model's:
//   KLD        = sum_v P(v) (log P(v) - log Q(v))   nats: KL(P || Q), the model's divergence from the base
//   same top-1 = [argmax P == argmax Q]              (the lowest id among equal maxima)
//   delta p    = Q(t) - P(t), t = argmax P           the change of the base's top token's probability
// reported as mean, median, 99.9th percentile and maximum KLD (percentiles interpolate linearly
// between order statistics), the share of positions with the same top-1, the RMS of delta p, and
// both models' mean loss and perplexity on the same windows. Log-softmax in double on the host;
// logits cross from the backend in blocks of rows (memory: two [block, V] blocks plus one float per
// scored position).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "infer/perplexity.h"
#include "model/model.h"

namespace difftx {

struct KlDivergenceResult {
  int64_t tokens = 0, scored = 0, windows = 0;
  double mean_loss = 0, perplexity = 0;            // the model's
  double base_mean_loss = 0, base_perplexity = 0;  // the base model's
  double kld_mean = 0, kld_median = 0, kld_p99_9 = 0, kld_max = 0;  // nats
  double same_top1 = 0;    // share of scored positions, [0, 1]
  double rms_delta_p = 0;  // [0, 1]
  double seconds = 0;
};

// Throws ConfigError when the two models' vocabularies differ in size (naming both), and what
// sliding_windows and the forward pass throw; NumericError when either model's logits are not
// finite (naming which model and the position).
KlDivergenceResult evaluate_kl_divergence(const Model& model, const Model& base, std::span<const int32_t> ids,
                                          const EvaluateOptions& options,
                                          const std::function<void(int64_t, int64_t)>& on_window = nullptr);

}  // namespace difftx
