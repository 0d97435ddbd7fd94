#include "model/attention_maps.h"

#include <cmath>
#include <limits>

#include "common/error.h"
#include "model/attention/layout.h"
#include "model/diff_layout.h"
#include "model/trace.h"

namespace difftx {

int64_t attention_map_head_count(const ModelConfig& c) {
  if (!c.is_differential()) return c.q_proj_rows() / c.head_dim;
  if (layout_module(c).per_token_lambda()) return c.num_attention_heads;
  return diff_head_map(c).n_diff_heads();
}

namespace {

// softmax(scale * q_i · k_j) over the visible keys j of each row i, from q [T, q_stride] (head at
// q_head) and the key cache [KH, T, d] (head k_head).
std::vector<float> softmax_map(const LayerTrace& tr, const ModelConfig& c, int64_t T, int64_t q_head, int64_t k_head) {
  const int64_t d = c.head_dim, q_stride = c.q_proj_rows();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<float> map(static_cast<size_t>(T * T), 0.0f);
  std::vector<double> s(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; ++i) {
    const float* q = tr.q.data() + i * q_stride + q_head * d;
    const int64_t j0 = c.sliding_window > 0 ? std::max<int64_t>(0, i - c.sliding_window + 1) : 0;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = j0; j <= i; ++j) {
      const float* k = tr.kc.data() + (k_head * T + j) * d;
      double dot = 0;
      for (int64_t e = 0; e < d; ++e) dot += static_cast<double>(q[e]) * k[e];
      s[j] = dot * scale;
      mx = std::max(mx, s[j]);
    }
    double sum = 0;
    for (int64_t j = j0; j <= i; ++j) sum += (s[j] = std::exp(s[j] - mx));
    for (int64_t j = j0; j <= i; ++j) map[i * T + j] = static_cast<float>(s[j] / sum);
  }
  return map;
}

}  // namespace

AttentionMaps attention_maps(const Model& model, std::span<const int32_t> ids, int64_t layer,
                             const std::vector<int64_t>& heads, int64_t max_tokens) {
  const ModelConfig& c = model.config();
  const int64_t T = static_cast<int64_t>(ids.size());
  if (T == 0) fail<ShapeError>("attention map: the prompt has no tokens");
  if (max_tokens > 0 && T > max_tokens)
    fail<ShapeError>("attention map: the prompt has {} tokens, more than the {} allowed (the model's "
                     "max_position_embeddings, or --max-tokens)",
                     T, max_tokens);
  if (layer < 0 || layer >= c.num_hidden_layers)
    fail<ConfigError>("attention map: layer {} does not exist; the model has {} layers (0-{})", layer,
                      c.num_hidden_layers, c.num_hidden_layers - 1);
  const int64_t count = attention_map_head_count(c);
  std::vector<int64_t> shown = heads;
  if (shown.empty())
    for (int64_t h = 0; h < count; ++h) shown.push_back(h);
  for (int64_t h : shown)
    if (h < 0 || h >= count)
      fail<ConfigError>("attention map: head {} does not exist; layer {} has {} {} (0-{})", h, layer, count,
                        c.is_differential() ? "differential heads" : "query heads", count - 1);

  TokenBatch batch{1, T, std::vector<int32_t>(ids.begin(), ids.end()), {}, {}, {}};
  ForwardTrace trace;
  std::vector<float> unused;
  model.forward(batch, nullptr, LogitsMode::hidden, unused, &trace);
  const LayerTrace& tr = trace.layers[static_cast<size_t>(layer)];
  const int64_t d = c.head_dim, QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d;

  AttentionMaps out{layer, T, c.is_differential(), {}};
  for (int64_t h : shown) {
    HeadMaps m;
    m.head = h;
    if (!c.is_differential()) {
      m.positive = softmax_map(tr, c, T, h, h / (QH / KH));
    } else {
      int64_t q1, q2, k1, k2;
      if (layout_module(c).per_token_lambda()) {  // diff-v2: query heads 2h and 2h+1, kv head 2h / (QH / KV)
        q1 = 2 * h, q2 = 2 * h + 1;
        k1 = k2 = q1 / (QH / KH);
        const int64_t H = c.num_attention_heads;
        for (int64_t i = 0; i < T; ++i)
          m.lambda.push_back(static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(tr.lambda_logits[i * H + h])))));
      } else {
        const DiffHeadMap hm = diff_head_map(c);
        q1 = hm.q1[h], q2 = hm.q2[h], k1 = hm.k1[h], k2 = hm.k2[h];
        m.lambda.assign(static_cast<size_t>(T), tr.lambda);
      }
      m.positive = softmax_map(tr, c, T, q1, k1);
      m.negative = softmax_map(tr, c, T, q2, k2);
      m.difference.resize(m.positive.size());
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
          m.difference[i * T + j] = m.positive[i * T + j] - m.lambda[i] * m.negative[i * T + j];
    }
    out.heads.push_back(std::move(m));
  }
  return out;
}

}  // namespace difftx
