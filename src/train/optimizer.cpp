#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace difftx {

namespace {

// The trainable tensors' elements in pieces of at most kPieceFloats, in table order: the unit the
// threads share (whole tensors balanced badly: SmolLM2-135M's embedding is a fifth of it), and
// the order in which the gradient norm's partial sums are added, so the norm does not depend on
// the thread count.
struct Piece {
  const ParamSpec* param;
  uint64_t begin, end;  // elements of the tensor
};
constexpr uint64_t kPieceFloats = uint64_t{1} << 16;

std::vector<Piece> trainable_pieces(const ParamTable& table) {
  std::vector<Piece> pieces;
  for (const ParamSpec& p : table.params()) {
    if (!is_trainable(p.kind)) continue;
    for (uint64_t b = 0; b < p.numel; b += kPieceFloats) pieces.push_back({&p, b, std::min(p.numel, b + kPieceFloats)});
  }
  return pieces;
}

}  // namespace


AdamW::AdamW(const ParamTable& table, const AdamWOptions& options)
    : table_(table), options_(options), m_(table.buffer_floats(), 0.0f), v_(table.buffer_floats(), 0.0f) {
  for (const auto& p : table.params()) {
    decay_.push_back(weight_decay_applies(p.kind));
  }
}

void AdamW::step(std::span<float> params, std::span<const float> grads, double lr) {
  ++steps_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(steps_));
  const float step_size = static_cast<float>(lr / bias1);
  const float inv_sqrt_bias2 = static_cast<float>(1.0 / std::sqrt(bias2));
  const float eps = static_cast<float>(options_.epsilon);
  const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
  const std::vector<Piece> pieces = trainable_pieces(table_);
  const ParamSpec* first = table_.params().data();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < pieces.size(); ++i) {
    const ParamSpec& p = *pieces[i].param;
    const float decay = decay_[static_cast<size_t>(&p - first)] ? static_cast<float>(lr * options_.weight_decay) : 0.0f;
    float* x = params.data() + p.offset;
    const float* g = grads.data() + p.offset;
    float* m = m_.data() + p.offset;
    float* v = v_.data() + p.offset;
#pragma omp simd  // four separate buffers
    for (uint64_t j = pieces[i].begin; j < pieces[i].end; ++j) {
      const float xj = x[j] - decay * x[j];
      const float mj = fb1 * m[j] + (1.0f - fb1) * g[j];
      const float vj = fb2 * v[j] + (1.0f - fb2) * g[j] * g[j];
      m[j] = mj;
      v[j] = vj;
      x[j] = xj - step_size * mj / (std::sqrt(vj) * inv_sqrt_bias2 + eps);
    }
  }
}

double clip_grad_norm(const ParamTable& table, std::span<float> grads, double max_norm) {
  const std::vector<Piece> pieces = trainable_pieces(table);
  std::vector<double> partial(pieces.size());
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < pieces.size(); ++i) {
    const float* g = grads.data() + pieces[i].param->offset;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (uint64_t j = pieces[i].begin; j < pieces[i].end; ++j) s += static_cast<double>(g[j]) * g[j];
    partial[i] = s;
  }
  double sum = 0.0;
  for (double s : partial) sum += s;  // in piece order
  const double norm = std::sqrt(sum);
  if (max_norm > 0.0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
      const float c = static_cast<float>(coef);
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < pieces.size(); ++i) {
        float* g = grads.data() + pieces[i].param->offset;
#pragma omp simd
        for (uint64_t j = pieces[i].begin; j < pieces[i].end; ++j) g[j] *= c;
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
