// One optimizer step (llm.c's gpt2_backward_and_reduce + gpt2_update): accumulate the gradients of
// the step's micro-batches, reduce them over the data-parallel ranks, check for divergence, clip,
// and apply AdamW. The loss is averaged over all trained tokens of the step on every rank
// (transformers' num_items_in_batch), so neither accumulation nor the world size changes the
// gradient's scale.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/trace.h"
#include "train/batches.h"
#include "train/collective.h"
#include "train/optimizer.h"

namespace difftx {

struct StepOptions {
  double learning_rate = 0;  // of this step (after the schedule)
  double max_grad_norm = 0;  // <= 0: no clipping
  float diff_attn_mix = 1.0f;  // the warm-up mix of this step's forward passes (model.h ForwardOptions)
  // gradient_checkpointing: recompute each layer's activations in the backward, keeping those of
  // kept_layers (ForwardOptions::kept_layers; the monitored layers on a logging step).
  bool recompute_activations = false;
  std::vector<int64_t> kept_layers = {};
  // LoRA training with lora_dropout: this step's seed (nonzero; the trainer derives it from the run's
  // seed and the step number); each micro-batch's masks come from lora_pass_seed. 0: no dropout.
  uint64_t lora_dropout_seed = 0;
};

// The dropout seed of one micro-batch of one rank in a step (never 0).
uint64_t lora_pass_seed(uint64_t step_seed, int rank, int64_t micro_batch);

struct StepResult {
  double loss_sum = 0;   // summed over the step's trained tokens, all ranks (nats)
  int64_t targets = 0;   // trained tokens of the step, all ranks
  int64_t tokens = 0;    // tokens run through the model, all ranks (padding excluded)
  double loss = 0;       // loss_sum / targets (0 without targets)
  double grad_norm = 0;  // global norm before clipping
  // Non-empty when the step diverged: what became NaN or infinite (the loss, the gradient norm, a
  // weight after the update, or a derived per-layer lambda after the update). The weights are
  // then not to be saved.
  std::string diverged;
};

// Trains the model's trained_table() (every weight, or a LoRA run's adapters and whole tensors).
// grads: a buffer in the trained table's layout (overwritten); trace: working memory of the backward pass.
StepResult train_step(Model& model, AdamW& optimizer, std::span<const MicroBatch> micro_batches,
                      const StepOptions& options, std::span<float> grads, ForwardTrace& trace, Collective& collective);

}  // namespace difftx
