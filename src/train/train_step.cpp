#include "train/train_step.h"

#include <algorithm>
#include <cmath>

#include "model/diff_checks.h"
#include "model/finite_logits.h"

namespace difftx {

namespace {

// The name of the first parameter holding a NaN or infinity, or "" when all are finite.
std::string non_finite_parameter(const Model& model) {
  const std::span<const float> w = model.weights();
  for (const ParamSpec& p : model.table().params())
    for (uint64_t i = 0; i < p.numel; ++i)
      if (!std::isfinite(w[p.offset + i])) return p.name;
  return {};
}

}  // namespace

StepResult train_step(Model& model, AdamW& optimizer, std::span<const MicroBatch> micro_batches,
                      const StepOptions& o, std::span<float> grads, ForwardTrace& trace, Collective& collective) {
  StepResult r;
  int64_t targets = 0;
  for (const MicroBatch& mb : micro_batches) targets += mb.target_count;
  collective.all_reduce_sum(std::span<int64_t>(&targets, 1));  // the scale needs every rank's count
  r.targets = targets;

  std::fill(grads.begin(), grads.end(), 0.0f);
  double loss_sum = 0;
  for (const MicroBatch& mb : micro_batches) {
    if (mb.target_count == 0) continue;
    loss_sum += model.loss_and_backward(mb.tokens, mb.targets, 1.0f / static_cast<float>(targets), grads, trace,
                                        {o.diff_attn_mix});
    for (uint8_t m : mb.tokens.attention_mask) r.tokens += m;
  }
  collective.all_reduce_sum(grads);
  collective.all_reduce_sum(std::span<double>(&loss_sum, 1));
  r.loss_sum = loss_sum;
  r.loss = targets > 0 ? loss_sum / static_cast<double>(targets) : 0.0;
  // Divergence stops before anything non-finite reaches the weights or a checkpoint.
  if (!std::isfinite(r.loss)) {
    r.diverged = "the loss is " + number_text(r.loss);
    return r;
  }
  r.grad_norm = clip_grad_norm(model.table(), grads, o.max_grad_norm, *model.backend());
  if (!std::isfinite(r.grad_norm)) {
    r.diverged = "the gradient norm is " + number_text(r.grad_norm);
    return r;
  }
  optimizer.step(model.weights(), grads, o.learning_rate);
  if (const std::string bad = non_finite_parameter(model); !bad.empty())
    r.diverged = "the update made " + bad + " non-finite";
  else if (const std::string lambda = non_finite_lambda(model); !lambda.empty())
    r.diverged = "the update made a derived quantity non-finite: " + lambda;
  return r;
}

}  // namespace difftx
