// The seed's llama-differential layout (spec §3): lambda_init stored per layer, the warm-up mix,
// an optional RMSNorm with a learned weight per head ("subln"), no output scale; "double" mode
// (q_proj/k_proj doubled: H diff-heads, value width d) or "split" mode (the model's own heads
// halved: H/2 diff-heads, value width 2d).
#include <fmt/format.h>

#include "common/error.h"
#include "model/attention/modules.h"

namespace difftx {

namespace {

class LlamaDifferential final : public AttentionLayoutModule {
 public:
  AttentionLayout layout() const override { return AttentionLayout::llama_differential; }

  void add_layer_params(ParamTable& t, const ModelConfig& c, const std::string& prefix, int64_t layer) const override {
    t.add(prefix + "self_attn.lambda_init", {}, ParamInit::lambda_init, layer);  // 0-dim: the value is stored
    add_lambda_vectors(t, c, prefix, layer);
    if (c.sublayer_norm) t.add(prefix + "self_attn.subln.weight", {c.diff_value_width()}, ParamInit::ones);
  }

  // G = H / KV. double: H diff-heads; q1 = head i, q2 = head H+i of the doubled q_proj; k1 = kv head
  // i/G, k2 = kv head KV + i/G of the doubled k_proj; value = v head i/G (w = d).
  // split: the paired heads (modules.h), with k2 = kv head KV/2 + i/G (the second half of the kv heads).
  DiffHeadMap head_map(const ModelConfig& c) const override {
    const auto H = static_cast<int32_t>(c.num_attention_heads), KV = static_cast<int32_t>(c.num_key_value_heads);
    const int32_t G = H / KV;
    DiffHeadMap m;
    if (c.double_heads()) {
      m.value_heads = 1;
      for (int32_t i = 0; i < H; ++i) {
        m.q1.push_back(i);
        m.q2.push_back(H + i);
        m.k1.push_back(i / G);
        m.k2.push_back(KV + i / G);
        m.v.push_back(i / G);
      }
      return m;
    }
    return paired_heads_map(c, [&](int32_t i) { return KV / 2 + i / G; });
  }

  double lambda_init(const float* stored, int64_t) const override { return *stored; }
  bool warmup_mix() const override { return true; }
  Output output(const ModelConfig& c, int64_t) const override { return {c.sublayer_norm, 1.0f}; }

  // Split mode halves the kv heads too (k2 reads the second half).
  void check_conversion(const ModelConfig& base, const ConvertOptions& o) const override {
    if (o.init == ConvertInit::identity) {
      if (o.sublayer_norm)
        fail<ConfigError>("--init identity cannot be used with --sublayer-norm: the per-head RMSNorm changes the "
                          "function, so the base model cannot be reproduced (use --no-sublayer-norm)");
      if (o.split_heads)
        fail<ConfigError>("--init identity cannot be used with --split-heads: in split mode the negative "
                          "component is half of the model's own heads, so the base function is not kept");
      if (o.zero_init)
        fail<ConfigError>("--init identity and --zero-init cannot be used together: zero-init is the seed's "
                          "exact conversion whose new parameters never train; identity keeps the base function "
                          "and trains");
    }
    if (o.split_heads && base.num_key_value_heads % 2 != 0)
      fail<ConfigError>("--split-heads needs an even number of key/value heads, but the model has {}",
                        base.num_key_value_heads);
  }
  void converted_config(ordered_json& raw, const ConvertOptions& o) const override {
    raw["model_type"] = "llama-differential";
    raw["architectures"] = {"LlamaDifferentialForCausalLM"};
    raw["split_heads"] = o.split_heads;
    raw["sublayer_norm"] = o.sublayer_norm;
    raw["zero_init"] = o.zero_init;
    raw["mirror_weights"] = o.mirror_weights;
  }
  bool pairs_value_heads(const ConvertOptions& o) const override { return o.split_heads; }
  // lambda = 0 (zero-init, or identity's equal lambda vectors with lambda_init 0) leaves A1 alone;
  // without subln that is the base's attention.
  bool conversion_is_exact(const ConvertOptions& o) const override {
    return (o.zero_init || o.init == ConvertInit::identity) && !o.sublayer_norm;
  }

  LambdaMetrics lambda_metrics(const ModelConfig& c, const LayerWeights& w, int64_t layer, float diff_attn_mix,
                               const ForwardTrace*) const override {
    return lambda_vector_metrics(*this, c, w, layer, diff_attn_mix);
  }

  std::string summary(const ModelConfig& c) const override {
    return fmt::format("llama-differential, {} mode, sublayer norm {}, base family {}{}", c.split_heads ? "split" : "double",
                       c.sublayer_norm ? "on" : "off", model_family_name(c.family),
                       c.zero_init ? ", converted with zero-init"
                                   : (c.mirror_weights ? ", converted with mirror-weights" : ""));
  }
  void describe(const ModelConfig& c, ordered_json& j) const override {
    j["split_heads"] = c.split_heads;
    j["sublayer_norm"] = c.sublayer_norm;
  }
};

}  // namespace

const AttentionLayoutModule& llama_differential_attention() {
  static const LlamaDifferential module;
  return module;
}

}  // namespace difftx
