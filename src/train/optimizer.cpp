#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace difftx {

namespace {

// The trainable tensors' elements in pieces of at most kPieceFloats, in table order: the unit the
// threads share (whole tensors balanced badly: SmolLM2-135M's embedding is a fifth of it), and
// the order in which the gradient norm's partial sums are added, so the norm does not depend on
// the thread count. x, m, v may be nullptr (the gradient norm reads only g).
constexpr uint64_t kPieceFloats = uint64_t{1} << 16;

std::vector<AdamWPiece> trainable_pieces(const ParamTable& table, float* x, float* g, float* m, float* v) {
  std::vector<AdamWPiece> pieces;
  auto at = [](float* base, uint64_t offset) { return base ? base + offset : nullptr; };
  for (const ParamSpec& p : table.params()) {
    if (!is_trainable(p.kind)) continue;
    for (uint64_t b = 0; b < p.numel; b += kPieceFloats) {
      const uint64_t o = p.offset + b;
      pieces.push_back({at(x, o), at(g, o), at(m, o), at(v, o), std::min(p.numel, b + kPieceFloats) - b,
                        weight_decay_applies(p.kind)});
    }
  }
  return pieces;
}

}  // namespace

AdamW::AdamW(const ParamTable& table, const AdamWOptions& options, Backend& backend)
    : table_(table), options_(options), backend_(backend), m_(table.buffer_floats(), 0.0f),
      v_(table.buffer_floats(), 0.0f) {}

void AdamW::step(std::span<float> params, std::span<const float> grads, double lr) {
  ++steps_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(steps_));
  AdamWStep st;
  st.decay = static_cast<float>(lr * options_.weight_decay);
  st.step_size = static_cast<float>(lr / bias1);
  st.inv_sqrt_bias2 = static_cast<float>(1.0 / std::sqrt(bias2));
  st.eps = static_cast<float>(options_.epsilon);
  st.beta1 = static_cast<float>(b1);
  st.beta2 = static_cast<float>(b2);
  // The update reads the gradients only; the pieces' pointers are mutable for the gradient-norm ops.
  float* g = const_cast<float*>(grads.data());
  backend_.adamw_update(trainable_pieces(table_, params.data(), g, m_.data(), v_.data()), st);
}

double clip_grad_norm(const ParamTable& table, std::span<float> grads, double max_norm, Backend& backend) {
  const std::vector<AdamWPiece> pieces = trainable_pieces(table, nullptr, grads.data(), nullptr, nullptr);
  std::vector<double> partial(pieces.size());
  backend.sum_squares_host(pieces, partial.data());
  double sum = 0.0;
  for (double s : partial) sum += s;  // in piece order
  const double norm = std::sqrt(sum);
  if (max_norm > 0.0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) backend.scale_grads(pieces, static_cast<float>(coef));
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
