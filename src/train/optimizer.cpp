#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/parallel.h"

namespace difftx {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

bool weight_decay_applies(std::string_view name) {
  if (ends_with(name, ".bias")) return false;
  if (name.find("layernorm") != std::string_view::npos) return false;
  if (name == "model.norm.weight" || ends_with(name, "_norm.weight") || ends_with(name, "subln.weight")) return false;
  return true;
}

bool is_trainable(std::string_view name) { return !ends_with(name, ".lambda_init"); }

AdamW::AdamW(const ParamTable& table, const AdamWOptions& options)
    : table_(table), options_(options), m_(table.buffer_floats(), 0.0f), v_(table.buffer_floats(), 0.0f) {
  for (const auto& p : table.params()) {
    decay_.push_back(weight_decay_applies(p.name));
    trainable_.push_back(is_trainable(p.name));
  }
}

void AdamW::step(std::span<float> params, std::span<const float> grads, double lr) {
  ++steps_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(steps_));
  const auto& specs = table_.params();
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!trainable_[i]) continue;
    const ParamSpec& p = specs[i];
    const float decay = decay_[i] ? static_cast<float>(lr * options_.weight_decay) : 0.0f;
    const float step_size = static_cast<float>(lr / bias1);
    const float inv_sqrt_bias2 = static_cast<float>(1.0 / std::sqrt(bias2));
    const float eps = static_cast<float>(options_.epsilon);
    const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
    float* x = params.data() + p.offset;
    const float* g = grads.data() + p.offset;
    float* m = m_.data() + p.offset;
    float* v = v_.data() + p.offset;
    for (uint64_t j = 0; j < p.numel; ++j) {
      x[j] -= decay * x[j];
      m[j] = fb1 * m[j] + (1.0f - fb1) * g[j];
      v[j] = fb2 * v[j] + (1.0f - fb2) * g[j] * g[j];
      x[j] -= step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_bias2 + eps);
    }
  }
}

double clip_grad_norm(const ParamTable& table, std::span<float> grads, double max_norm) {
  double sum = 0.0;
  for (const auto& p : table.params()) {
    if (!is_trainable(p.name)) continue;
    const float* g = grads.data() + p.offset;
    sum += parallel_sum(static_cast<int64_t>(p.numel), [&](int64_t j) { return static_cast<double>(g[j]) * g[j]; },
                        65536);
  }
  const double norm = std::sqrt(sum);
  if (max_norm > 0.0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
      const float c = static_cast<float>(coef);
      for (const auto& p : table.params()) {
        float* g = grads.data() + p.offset;
        for (uint64_t j = 0; j < p.numel; ++j) g[j] *= c;
      }
    }
  }
  return norm;
}

double lr_multiplier(LrSchedule schedule, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  switch (schedule) {
    case LrSchedule::constant:
      return 1.0;
    case LrSchedule::linear:
      return std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
    case LrSchedule::cosine: {
      const double progress =
          static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * 0.5 * 2.0 * progress)));
    }
  }
  return 1.0;
}

}  // namespace difftx
