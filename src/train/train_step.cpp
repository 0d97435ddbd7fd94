#include "train/train_step.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "common/parallel.h"
#include "model/diff_checks.h"
#include "model/finite_logits.h"
#include "train/grad_buckets.h"

namespace difftx {

namespace {

// The name of the first parameter holding a NaN or infinity, or "" when all are finite. Needed after
// an update that wrote a non-finite value, and on ZeRO-1 ranks (the others' shards arrive by
// all-gather): one pass shared by the threads, names looked up only when it found something.
std::string non_finite_parameter(const Model& model) {
  const std::span<const float> w = model.trained_weights();
  bool all_finite = true;
  parallel_ranges(static_cast<int64_t>(w.size()), w.size() >= (size_t{1} << 16), [&](int64_t begin, int64_t end) {
    float product = 0.0f;  // x * 0 is 0 for a finite x, NaN for NaN and infinities
#pragma omp simd reduction(+ : product)
    for (int64_t i = begin; i < end; ++i) product += w[static_cast<size_t>(i)] * 0.0f;
    if (product != 0.0f) {
#pragma omp atomic write
      all_finite = false;
    }
  });
  if (all_finite) return {};
  for (const ParamSpec& p : model.trained_table().params())
    for (uint64_t i = 0; i < p.numel; ++i)
      if (!std::isfinite(w[p.offset + i])) return p.name;
  return {};
}

}  // namespace

uint64_t lora_pass_seed(uint64_t step_seed, int rank, int64_t micro_batch) {
  uint64_t h = step_seed;
  for (uint64_t v : {static_cast<uint64_t>(rank) + 1, static_cast<uint64_t>(micro_batch) + 1}) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h = (h ^ (h >> 31)) * 0xbf58476d1ce4e5b9ull;
  }
  return h == 0 ? 1 : h;
}

StepResult train_step(Model& model, AdamW& optimizer, std::span<const MicroBatch> micro_batches,
                      const StepOptions& o, std::span<float> grads, ForwardTrace& trace, Collective& collective) {
  StepResult r;
  int64_t counts[2] = {0, 0};  // trained tokens, tokens run (padding excluded), all ranks
  for (const MicroBatch& mb : micro_batches) {
    counts[0] += mb.target_count;
    if (mb.target_count > 0)
      for (uint8_t m : mb.tokens.attention_mask) counts[1] += m;
  }
  collective.all_reduce_sum(std::span<int64_t>(counts, 2));  // the scale needs every rank's count
  const int64_t targets = counts[0];
  r.targets = targets;
  r.tokens = counts[1];

  // Several ranks: each layer's gradients start their sum over the ranks as soon as the step's last
  // backward pass on this rank has finished the layer (grad_buckets.h), overlapping the layers below.
  // ZeRO-1 (a sharded optimizer): reduce-scatters instead, each rank keeping the sums of its shards.
  const bool ranks = collective.world_size() > 1, zero1 = ranks && optimizer.sharded();
  const GradBuckets buckets = ranks ? grad_buckets(model.trained_table(), model.config().num_hidden_layers) : GradBuckets{};
  auto start = [&](const FloatRange& b) {
    const std::span<float> piece = grads.subspan(b.begin, b.end - b.begin);
    if (zero1)
      collective.start_reduce_scatter_sum(piece);
    else
      collective.start_all_reduce_sum(piece);
  };
  std::vector<bool> started(buckets.layers.size(), false);
  auto start_layer = [&](int64_t l) {
    for (const FloatRange& b : buckets.layers[static_cast<size_t>(l)]) start(b);
    started[static_cast<size_t>(l)] = true;
  };
  size_t last = micro_batches.size();  // the last micro-batch with targets
  for (size_t i = 0; i < micro_batches.size(); ++i)
    if (micro_batches[i].target_count > 0) last = i;

  parallel_ranges(static_cast<int64_t>(grads.size()), grads.size() >= (size_t{1} << 16), [&](int64_t begin, int64_t end) {
    std::fill(grads.begin() + begin, grads.begin() + end, 0.0f);
  });
  double loss_sum = 0;
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    const MicroBatch& mb = micro_batches[i];
    if (mb.target_count == 0) continue;
    const bool hook = ranks && i == last && !buckets.layers.empty();
    // LoRA dropout: each micro-batch of each rank draws its own masks, the same again on resumption.
    const uint64_t dropout_seed =
        o.lora_dropout_seed == 0 ? 0 : lora_pass_seed(o.lora_dropout_seed, collective.rank(), static_cast<int64_t>(i));
    loss_sum += model.loss_and_backward(mb.tokens, mb.targets, 1.0f / static_cast<float>(targets), grads, trace,
                                        {o.diff_attn_mix, o.recompute_activations, o.kept_layers, dropout_seed},
                                        hook ? std::function<void(int64_t)>(start_layer) : nullptr);
  }
  if (ranks) {
    // Every rank starts the same sums in the same order, also one without targets in this step.
    for (int64_t l = static_cast<int64_t>(buckets.layers.size()) - 1; l >= 0; --l)
      if (!started[static_cast<size_t>(l)]) start_layer(l);
    for (const FloatRange& b : buckets.rest) start(b);
    collective.wait();
  }
  collective.all_reduce_sum(std::span<double>(&loss_sum, 1));
  r.loss_sum = loss_sum;
  r.loss = targets > 0 ? loss_sum / static_cast<double>(targets) : 0.0;
  // Divergence stops before anything non-finite reaches the weights or a checkpoint.
  if (!std::isfinite(r.loss)) {
    r.diverged = "the loss is " + number_text(r.loss);
    return r;
  }
  r.grad_norm = zero1 ? clip_grad_norm_sharded(model.trained_table(), grads, o.max_grad_norm, optimizer.owned(), collective,
                                               *model.backend())
                      : clip_grad_norm(model.trained_table(), grads, o.max_grad_norm, *model.backend());
  if (!std::isfinite(r.grad_norm)) {
    r.diverged = "the gradient norm is " + number_text(r.grad_norm);
    return r;
  }
  // The update says whether what it wrote is finite; ZeRO-1's ranks look at every shard (all of them agree).
  const bool updated_finite = optimizer.step(model.trained_weights(), grads, o.learning_rate);
  if (zero1) {  // each rank updated its shards: every rank gets all of them
    const std::span<float> w = model.trained_weights();
    for (const FloatRange& b : buckets.in_order()) collective.start_all_gather(w.subspan(b.begin, b.end - b.begin));
    collective.wait();
  }
  model.trained_weights_updated();
  if (const std::string bad = updated_finite && !zero1 ? std::string() : non_finite_parameter(model); !bad.empty())
    r.diverged = "the update made " + bad + " non-finite";
  else if (const std::string lambda = non_finite_lambda(model); !lambda.empty())
    r.diverged = "the update made a derived quantity non-finite: " + lambda;
  return r;
}

}  // namespace difftx
