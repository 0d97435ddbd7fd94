#include "model/rope_freqs.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace difftx {

namespace {

std::vector<double> base_inv_freq(double theta, int64_t d) {
  std::vector<double> f(static_cast<size_t>(d / 2));
  for (int64_t i = 0; i < d / 2; ++i) f[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(d));
  return f;
}

double yarn_mscale(double scale, double m) { return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; }

void apply_llama3(std::vector<double>& f, const RopeScaling& r) {
  const double L0 = static_cast<double>(r.original_max_position_embeddings);
  const double low_wavelen = L0 / r.low_freq_factor;
  const double high_wavelen = L0 / r.high_freq_factor;
  for (double& x : f) {
    const double wavelen = 2.0 * std::numbers::pi / x;
    if (wavelen > low_wavelen) {
      x = x / r.factor;
    } else if (wavelen >= high_wavelen) {  // medium band: blend
      const double smooth = (L0 / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      x = (1.0 - smooth) * x / r.factor + smooth * x;
    }
  }
}

float apply_yarn(std::vector<double>& f, const RopeScaling& r, double theta, int64_t d) {
  const double L0 = static_cast<double>(r.original_max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return static_cast<double>(d) * std::log(L0 / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(theta));
  };
  double low = correction_dim(r.beta_fast);
  double high = correction_dim(r.beta_slow);
  if (r.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(d - 1));
  if (low == high) high += 0.001;
  for (size_t i = 0; i < f.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation = 1.0 - ramp;  // share of the original frequency
    f[i] = (f[i] / r.factor) * (1.0 - extrapolation) + f[i] * extrapolation;
  }
  if (r.attention_factor) return static_cast<float>(*r.attention_factor);
  if (r.mscale && r.mscale_all_dim && *r.mscale != 0 && *r.mscale_all_dim != 0)
    return static_cast<float>(yarn_mscale(r.factor, *r.mscale) / yarn_mscale(r.factor, *r.mscale_all_dim));
  return static_cast<float>(yarn_mscale(r.factor, 1.0));
}

}  // namespace

RopeFreqs rope_freqs(const ModelConfig& c, int64_t seq_len) {
  const int64_t d = c.head_dim;
  const RopeScaling& r = c.rope_scaling;
  double theta = c.rope_theta;
  if (r.type == RopeType::dynamic && seq_len > c.max_position_embeddings) {
    const double ratio = r.factor * static_cast<double>(seq_len) / static_cast<double>(c.max_position_embeddings) -
                         (r.factor - 1.0);
    theta = theta * std::pow(ratio, static_cast<double>(d) / static_cast<double>(d - 2));
  }
  std::vector<double> f = base_inv_freq(theta, d);
  float attention_factor = 1.0f;
  switch (r.type) {
    case RopeType::none:
    case RopeType::dynamic:
      break;
    case RopeType::linear:
      for (double& x : f) x /= r.factor;
      break;
    case RopeType::llama3:
      apply_llama3(f, r);
      break;
    case RopeType::yarn:
      attention_factor = apply_yarn(f, r, theta, d);
      break;
  }
  RopeFreqs out;
  out.inv_freq.assign(f.begin(), f.end());
  out.attention_factor = attention_factor;
  return out;
}

void rope_cos_sin(const RopeFreqs& freqs, const int64_t* positions, int64_t n, float* cos, float* sin) {
  const int64_t half = static_cast<int64_t>(freqs.inv_freq.size());
  const double a = freqs.attention_factor;
  for (int64_t r = 0; r < n; ++r) {
    const float p = static_cast<float>(positions[r]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = p * freqs.inv_freq[i];
      cos[r * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)) * a);
      sin[r * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)) * a);
    }
  }
}

}  // namespace difftx
