// The diff-transformer plugin's monitoring (spec §6): lambda parameters of every layer and the
// statistics of both softmax maps of monitored layers, from the last forward pass.
#pragma once

#include <cstdint>
#include <vector>

#include "io/json_file.h"
#include "model/model.h"
#include "model/trace.h"

namespace difftx {

// round(i * (L - 1) / (k - 1)) for i < k (k = 1: layer 0), k capped at L; rounding half to even,
// as Python's round() does (L = 30, k = 3 gives 0, 14, 29).
std::vector<int64_t> monitored_layers(int64_t num_layers, int64_t k);

// layer_{l}/lambda_q1_norm, lambda_k1_norm, lambda_q2_norm, lambda_k2_norm, lambda1, lambda2,
// lambda_init, lambda_full, attn1_mean, attn2_mean, attn1_std, attn2_std for the monitored layers,
// and aggregate/{lambda_q1_norm,lambda_q2_norm,lambda_k1_norm,lambda_k2_norm,lambda1,lambda2,
// lambda_full}_{mean,std} over all layers (std with n - 1, as torch; aggregate lambda_full is the
// mix-scaled value the last forward used, as the seed logs it; diff_attn_mix is that forward's
// warm-up mix), plus aggregate/diff_attn_mix when with_mix. attn*_mean/std are over every entry of the [batch, heads, queries, keys] weights,
// masked entries counting as 0, as torch's mean()/std() of the seed's attention tensors.
ordered_json diff_attention_metrics(const Model& model, const ForwardTrace& last, const std::vector<int64_t>& layers,
                                    float diff_attn_mix, bool with_mix);

}  // namespace difftx
