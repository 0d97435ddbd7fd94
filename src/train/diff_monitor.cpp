#include "train/diff_monitor.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "kernels/backend.h"
#include "model/attention/layout.h"
#include "model/diff_layout.h"

namespace difftx {

std::vector<int64_t> monitored_layers(int64_t num_layers, int64_t k) {
  k = std::min(k, num_layers);
  std::vector<int64_t> out;
  const double stride = k > 1 ? static_cast<double>(num_layers - 1) / static_cast<double>(k - 1) : 0.0;
  for (int64_t i = 0; i < k; ++i) out.push_back(static_cast<int64_t>(std::nearbyint(static_cast<double>(i) * stride)));
  return out;
}

namespace {

struct MeanStd {
  double mean, std;
};

MeanStd mean_std(const std::vector<double>& xs) {
  double s = 0;
  for (double x : xs) s += x;
  const double mean = s / static_cast<double>(xs.size());
  double v = 0;
  for (double x : xs) v += (x - mean) * (x - mean);
  return {mean, xs.size() > 1 ? std::sqrt(v / static_cast<double>(xs.size() - 1)) : std::nan("")};
}

// mean and unbiased std over all B * Hd * T * T weights of each component's softmax maps
// (first: A1's maps, second: A2's), from the square sums the backend recomputes.
std::pair<MeanStd, MeanStd> map_statistics(const Model& model, const ForwardTrace& tr, int64_t l) {
  const ModelConfig& c = model.config();
  const LayerTrace& a = tr.layers[l];
  const DiffHeadMap hm = diff_head_map(c);
  const int64_t B = tr.batch, T = tr.seq_len, d = c.head_dim, Hd = hm.n_diff_heads();
  const DiffAttentionStats stats{const_cast<float*>(a.m.data()), const_cast<float*>(a.l.data()), nullptr};
  std::vector<float> sq(static_cast<size_t>(B * 2 * Hd * T));
  model.backend()->diff_attention_square_sums(
      {B, T, T, T, c.q_proj_rows() / d, c.k_proj_rows() / d, c.num_key_value_heads, d, c.sliding_window}, hm,
      1.0f / std::sqrt(static_cast<float>(d)), a.q.data(), c.q_proj_rows(), a.kc.data(), tr.segments.data(), stats,
      sq.data());
  auto component = [&](int64_t first_map) {
    double sum = 0, sum_sq = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = (b * 2 * Hd + first_map) * T; i < (b * 2 * Hd + first_map + Hd) * T; ++i) {
        sum += a.l[i] > 0.0f ? 1.0 : 0.0;  // each row that sees a key sums to 1
        sum_sq += sq[i];
      }
    const double n = static_cast<double>(B * Hd) * static_cast<double>(T) * static_cast<double>(T);
    const double mean = sum / n;
    return MeanStd{mean, n > 1 ? std::sqrt(std::max(0.0, (sum_sq - n * mean * mean) / (n - 1))) : 0.0};
  };
  return {component(0), component(Hd)};
}

}  // namespace

ordered_json diff_attention_metrics(const Model& model, const ForwardTrace& last, const std::vector<int64_t>& layers,
                                    float diff_attn_mix, bool with_mix) {
  const ModelConfig& c = model.config();
  const AttentionLayoutModule& layout = layout_module(c);
  std::vector<std::pair<std::string, std::vector<double>>> aggregated;  // in log order
  ordered_json m = ordered_json::object();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const AttentionLayoutModule::LambdaMetrics lm = layout.lambda_metrics(c, model.layer_weights(l), l, diff_attn_mix, &last);
    if (aggregated.empty())
      for (const auto& [name, v] : lm.aggregated) aggregated.emplace_back(name, std::vector<double>{});
    for (size_t i = 0; i < lm.aggregated.size(); ++i) aggregated[i].second.push_back(lm.aggregated[i].second);
    if (std::find(layers.begin(), layers.end(), l) == layers.end()) continue;
    const std::string k = fmt::format("layer_{}/", l);
    for (const auto& [name, v] : lm.per_layer) m[k + name] = v;
    if (layout.lambda_per_layer() && static_cast<int64_t>(last.layers.size()) > l && !last.layers[l].m.empty()) {
      const auto [a1, a2] = map_statistics(model, last, l);
      m[k + "attn1_mean"] = a1.mean;
      m[k + "attn2_mean"] = a2.mean;
      m[k + "attn1_std"] = a1.std;
      m[k + "attn2_std"] = a2.std;
    }
  }
  for (const auto& [name, values] : aggregated) {
    const MeanStd s = mean_std(values);
    m[fmt::format("aggregate/{}_mean", name)] = s.mean;
    m[fmt::format("aggregate/{}_std", name)] = s.std;
  }
  if (with_mix) m["aggregate/diff_attn_mix"] = diff_attn_mix;
  return m;
}

}  // namespace difftx
