// Microsoft's DIFF V2 (spec §8): q_proj with 2H query heads in ordinary single-softmax attention
// (query head j reads kv head j / 2G, so heads 2i and 2i+1 share one), a per-token, per-head
// lambda[t, i] = sigmoid(x_t · lambda_proj[i]) on the block's normed input, and the paired
// combine out_i = A_2i V - mix * lambda[t, i] A_2i+1 V (no norm, no lambda_init): H outputs of
// width d into o_proj. Keys and values keep the base's shapes, so the KV cache is the base's.
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "common/error.h"
#include "model/attention/modules.h"

namespace difftx {

namespace {

class DiffV2 final : public AttentionLayoutModule {
 public:
  AttentionLayout layout() const override { return AttentionLayout::diff_v2; }
  bool per_token_lambda() const override { return true; }

  // lambda_proj is a Linear weight without bias: trained and decayed like one.
  void add_layer_params(ParamTable& t, const ModelConfig& c, const std::string& prefix, int64_t) const override {
    t.add(prefix + "self_attn.lambda_proj.weight", {c.num_attention_heads, c.hidden_size}, ParamInit::normal);
  }

  DiffHeadMap head_map(const ModelConfig&) const override {
    throw std::logic_error("diff-v2 runs ordinary attention over its 2H query heads, not the fused kernel");
  }
  double lambda_init(const float*, int64_t) const override { return 0.0; }
  bool warmup_mix() const override { return true; }
  Output output(const ModelConfig&, int64_t) const override { return {}; }

  // Keeping the base function needs the identity rule (spec §9): zero rows would still leave a
  // uniform second map with lambda = 1/2.
  void check_conversion(const ModelConfig&, const ConvertOptions& o) const override {
    if (o.split_heads)
      fail<ConfigError>("--split-heads does not apply to --format diff-v2: diff-v2 doubles the query heads "
                        "(2i = the base's head i, 2i+1 new)");
    if (o.zero_init)
      fail<ConfigError>("--zero-init does not apply to --format diff-v2: lambda = sigmoid(x · lambda_proj) is never "
                        "0, so zero rows do not give the base model; use --init identity to start from it");
    if (o.sublayer_norm_given && o.sublayer_norm)
      fail<ConfigError>("--sublayer-norm does not apply to --format diff-v2: the layout has no per-head norm");
  }
  void converted_config(ordered_json& raw, const ConvertOptions&) const override {
    raw["model_type"] = "diff-v2";
    raw["architectures"] = {"DiffV2ForCausalLM"};
  }
  // Identity: heads 2i and 2i+1 equal, lambda = sigmoid(0) = 1/2, o_proj doubled: exactly the base.
  bool conversion_is_exact(const ConvertOptions& o) const override { return o.init == ConvertInit::identity; }
  NewQueryRows new_query_rows() const override { return NewQueryRows::interleaved; }
  float o_proj_scale(const ConvertOptions& o) const override { return o.init == ConvertInit::identity ? 2.0f : 1.0f; }

  // layer_{l}/lambda_mean, lambda_std: sigmoid(x · lambda_proj[i]) over the last forward's real
  // (unpadded) tokens and the H heads, before the warm-up mix (std with n - 1, as torch);
  // lambda_proj_norm: its Frobenius norm. Aggregated over layers: the same three.
  LambdaMetrics lambda_metrics(const ModelConfig& c, const LayerWeights& w, int64_t layer, float,
                               const ForwardTrace* last) const override {
    const int64_t H = c.num_attention_heads, D = c.hidden_size;
    double sq = 0;
    for (int64_t i = 0; i < H * D; ++i) sq += static_cast<double>(w.lambda_proj.f32[i]) * w.lambda_proj.f32[i];
    double sum = 0, sum_sq = 0, n = 0;
    if (last != nullptr && static_cast<int64_t>(last->layers.size()) > layer) {
      const std::vector<float>& z = last->layers[static_cast<size_t>(layer)].lambda_logits;
      for (size_t t = 0; t < last->segments.size() && (t + 1) * H <= z.size(); ++t) {
        if (last->segments[t] == 0) continue;  // padding
        for (int64_t i = 0; i < H; ++i) {
          const double lam = 1.0 / (1.0 + std::exp(-static_cast<double>(z[t * H + i])));
          sum += lam, sum_sq += lam * lam, n += 1;
        }
      }
    }
    const double mean = n > 0 ? sum / n : std::nan("");
    const double sd = n > 1 ? std::sqrt(std::max(0.0, (sum_sq - n * mean * mean) / (n - 1))) : std::nan("");
    LambdaMetrics m;
    m.per_layer = {{"lambda_mean", mean}, {"lambda_std", sd}, {"lambda_proj_norm", std::sqrt(sq)}};
    m.aggregated = m.per_layer;
    return m;
  }

  std::string summary(const ModelConfig& c) const override {
    return fmt::format("diff-v2 (DIFF V2: {} query heads in pairs, per-token lambda = sigmoid(x · lambda_proj)), base "
                       "family {}",
                       2 * c.num_attention_heads, model_family_name(c.family));
  }
};

}  // namespace

const AttentionLayoutModule& diff_v2_attention() {
  static const DiffV2 module;
  return module;
}

}  // namespace difftx
