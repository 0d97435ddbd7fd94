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

void add_pieces(std::vector<AdamWPiece>& pieces, const ParamSpec& p, uint64_t begin, uint64_t end, float* x, float* g,
                float* m, float* v, uint64_t moment_offset) {
  auto at = [](float* base, uint64_t offset) { return base ? base + offset : nullptr; };
  for (uint64_t o = begin; o < end; o += kPieceFloats) {
    const uint64_t n = std::min(end, o + kPieceFloats) - o;
    pieces.push_back({at(x, o), at(g, o), at(m, o - begin + moment_offset), at(v, o - begin + moment_offset), n,
                      weight_decay_applies(p.kind)});
  }
}

// owned empty: every trainable element, the moments in the table's layout; else the owned
// elements range by range, the moments packed in that order.
std::vector<AdamWPiece> trainable_pieces(const ParamTable& table, const std::vector<FloatRange>& owned, float* x,
                                         float* g, float* m, float* v) {
  std::vector<AdamWPiece> pieces;
  if (owned.empty()) {
    for (const ParamSpec& p : table.params())
      if (is_trainable(p.kind)) add_pieces(pieces, p, p.offset, p.offset + p.numel, x, g, m, v, p.offset);
    return pieces;
  }
  uint64_t local = 0;  // the moments' offset of the current range
  for (const FloatRange& r : owned) {
    for (const ParamSpec& p : table.params()) {
      const uint64_t begin = std::max(r.begin, p.offset), end = std::min(r.end, p.offset + p.numel);
      if (is_trainable(p.kind) && begin < end) add_pieces(pieces, p, begin, end, x, g, m, v, local + (begin - r.begin));
    }
    local += r.end - r.begin;
  }
  return pieces;
}

uint64_t owned_floats(const ParamTable& table, const std::vector<FloatRange>& owned) {
  if (owned.empty()) return table.buffer_floats();
  uint64_t n = 0;
  for (const FloatRange& r : owned) n += r.end - r.begin;
  return n;
}

// The sum of squares of the pieces' gradients, added in piece order; then clipping at max_norm.
double sum_squares(const std::vector<AdamWPiece>& pieces, Backend& backend) {
  std::vector<double> partial(pieces.size());
  backend.sum_squares_host(pieces, partial.data());
  double sum = 0.0;
  for (double s : partial) sum += s;  // in piece order
  return sum;
}

void clip(const std::vector<AdamWPiece>& pieces, double norm, double max_norm, Backend& backend) {
  if (max_norm <= 0.0) return;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) backend.scale_grads(pieces, static_cast<float>(coef));
}

}  // namespace

AdamW::AdamW(const ParamTable& table, const AdamWOptions& options, Backend& backend, std::vector<FloatRange> owned)
    : table_(table), options_(options), backend_(backend), owned_(std::move(owned)),
      m_(owned_floats(table, owned_), 0.0f), v_(owned_floats(table, owned_), 0.0f) {}

bool AdamW::step(std::span<float> params, std::span<const float> grads, double lr) {
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
  return backend_.adamw_update(trainable_pieces(table_, owned_, params.data(), g, m_.data(), v_.data()), st);
}

void AdamW::keep_owned(std::span<const float> whole_m, std::span<const float> whole_v) {
  uint64_t local = 0;
  for (const FloatRange& r : owned_) {
    std::copy_n(whole_m.data() + r.begin, r.end - r.begin, m_.data() + local);
    std::copy_n(whole_v.data() + r.begin, r.end - r.begin, v_.data() + local);
    local += r.end - r.begin;
  }
}

double clip_grad_norm(const ParamTable& table, std::span<float> grads, double max_norm, Backend& backend) {
  const std::vector<AdamWPiece> pieces = trainable_pieces(table, {}, nullptr, grads.data(), nullptr, nullptr);
  const double norm = std::sqrt(sum_squares(pieces, backend));
  clip(pieces, norm, max_norm, backend);
  return norm;
}

double clip_grad_norm_sharded(const ParamTable& table, std::span<float> grads, double max_norm,
                              const std::vector<FloatRange>& owned, Collective& collective, Backend& backend) {
  const std::vector<AdamWPiece> pieces = trainable_pieces(table, owned, nullptr, grads.data(), nullptr, nullptr);
  double sum = sum_squares(pieces, backend);
  collective.all_reduce_sum(std::span<double>(&sum, 1));
  const double norm = std::sqrt(sum);
  clip(pieces, norm, max_norm, backend);
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
