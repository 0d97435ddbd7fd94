// AdamW with decoupled weight decay, gradient clipping by global norm, and the learning-rate
// schedules of transformers (the Hugging Face Trainer, which axolotl uses).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/aligned_vector.h"
#include "config/train_config.h"
#include "kernels/backend.h"
#include "model/params.h"
#include "train/collective.h"
#include "train/grad_buckets.h"

namespace difftx {

struct AdamWOptions {
  double learning_rate = 1e-5;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  double weight_decay = 0.0;
};

// Which parameters train and decay follows their kind (model/params.h: weight_decay_applies,
// is_trainable): every trainable tensor decays except biases and norm weights; lambda_init never trains.

// AdamW state: first and second moments in the parameter table's layout, and the step count.
// The element-wise update runs on `backend` (Backend::adamw_update); the moments are host memory
// today, as the CPU backend trains (a device backend will keep them in its Buffers).
class AdamW {
 public:
  // owned: ZeRO-1's shard of this rank (disjoint ranges of the parameter buffer, grad_buckets.h's
  // owned_shards): the moments exist for those elements only, packed range by range in that
  // order, and step() updates only them. Empty: every element.
  AdamW(const ParamTable& table, const AdamWOptions& options, Backend& backend = *cpu_backend(),
        std::vector<FloatRange> owned = {});
  // One update at learning rate `lr` (torch.optim.AdamW semantics): for each trainable tensor,
  // p -= lr * weight_decay * p (decayed tensors only), m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
  // p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), t = the step number from 1.
  // Returns whether every parameter it updated is finite.
  bool step(std::span<float> params, std::span<const float> grads, double lr);
  int64_t steps() const { return steps_; }
  // The moments: [buffer_floats()] in the table's layout; sharded: the owned elements, range by range.
  AlignedVector<float>& exp_avg() { return m_; }
  AlignedVector<float>& exp_avg_sq() { return v_; }
  const std::vector<FloatRange>& owned() const { return owned_; }
  // Sharded: keeps the owned elements of whole moments in the table's layout (a checkpoint's).
  void keep_owned(std::span<const float> whole_m, std::span<const float> whole_v);
  bool sharded() const { return !owned_.empty(); }
  void set_steps(int64_t steps) { steps_ = steps; }

 private:
  const ParamTable& table_;
  AdamWOptions options_;
  Backend& backend_;
  std::vector<FloatRange> owned_;
  AlignedVector<float> m_, v_;  // 64-byte aligned
  int64_t steps_ = 0;
};

// Global L2 norm of the gradients of trainable tensors; when it exceeds max_norm (> 0), scales
// them by max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_. Returns the norm before clipping.
// The squares are summed in double over fixed pieces of 65536 floats, added in table order: the
// same bits for any thread count. AdamW::step shares the same pieces among the threads. Runs on `backend`.
double clip_grad_norm(const ParamTable& table, std::span<float> grads, double max_norm,
                      Backend& backend = *cpu_backend());
// ZeRO-1: the same global norm from the ranks' owned elements (each rank's squares summed in
// double over its pieces, the ranks' sums added in rank order: deterministic, though not the
// unsharded sum's bits); only the owned gradients are clipped.
double clip_grad_norm_sharded(const ParamTable& table, std::span<float> grads, double max_norm,
                              const std::vector<FloatRange>& owned, Collective& collective, Backend& backend);

// transformers' schedules (get_constant_schedule_with_warmup, get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup with num_cycles 0.5): the multiplier of the learning rate for
// optimizer step `step` (0-based, = steps already taken): step / warmup during warm-up, then
// 1 / (total - step) / (total - warmup) / 0.5 (1 + cos(pi (step - warmup) / (total - warmup))).
double lr_multiplier(LrSchedule schedule, int64_t step, int64_t warmup_steps, int64_t total_steps);

}  // namespace difftx
