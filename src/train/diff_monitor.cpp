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

double norm(const float* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s);
}

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
  const int64_t d = c.head_dim;
  std::vector<double> q1n, q2n, k1n, k2n, l1s, l2s, full;
  ordered_json m = ordered_json::object();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& w = model.layer_weights(l);
    const float *q1 = w.lambda_q1, *k1 = w.lambda_k1, *q2 = w.lambda_q2, *k2 = w.lambda_k2;
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < d; ++i) {
      s1 += static_cast<double>(q1[i]) * k1[i];
      s2 += static_cast<double>(q2[i]) * k2[i];
    }
    const double lambda1 = std::exp(s1), lambda2 = std::exp(s2);
    const AttentionLayoutModule& layout = layout_module(c);
    const double lambda_init = layout.lambda_init(w.lambda_init, l);
    q1n.push_back(norm(q1, d));
    q2n.push_back(norm(q2, d));
    k1n.push_back(norm(k1, d));
    k2n.push_back(norm(k2, d));
    l1s.push_back(lambda1);
    l2s.push_back(lambda2);
    const double mix = layout.warmup_mix() ? diff_attn_mix : 1.0;
    full.push_back(mix * (lambda1 - lambda2 + lambda_init));
    if (std::find(layers.begin(), layers.end(), l) == layers.end()) continue;
    const std::string k = fmt::format("layer_{}/", l);
    m[k + "lambda_q1_norm"] = q1n.back();
    m[k + "lambda_k1_norm"] = k1n.back();
    m[k + "lambda_q2_norm"] = q2n.back();
    m[k + "lambda_k2_norm"] = k2n.back();
    m[k + "lambda1"] = lambda1;
    m[k + "lambda2"] = lambda2;
    m[k + "lambda_init"] = lambda_init;
    m[k + "lambda_full"] = lambda1 - lambda2 + lambda_init;
    if (static_cast<int64_t>(last.layers.size()) > l && !last.layers[l].m.empty()) {
      const auto [a1, a2] = map_statistics(model, last, l);
      m[k + "attn1_mean"] = a1.mean;
      m[k + "attn2_mean"] = a2.mean;
      m[k + "attn1_std"] = a1.std;
      m[k + "attn2_std"] = a2.std;
    }
  }
  for (auto [name, values] : {std::pair{"lambda_q1_norm", &q1n}, {"lambda_q2_norm", &q2n}, {"lambda_k1_norm", &k1n},
                              {"lambda_k2_norm", &k2n}, {"lambda1", &l1s}, {"lambda2", &l2s}, {"lambda_full", &full}}) {
    const MeanStd s = mean_std(*values);
    m[fmt::format("aggregate/{}_mean", name)] = s.mean;
    m[fmt::format("aggregate/{}_std", name)] = s.std;
  }
  if (with_mix) m["aggregate/diff_attn_mix"] = diff_attn_mix;
  return m;
}

}  // namespace difftx
