// transformers' DiffLlama (spec §4): the model's own heads paired (H/2 diff-heads, value width 2d),
// both maps of a diff-head on the kv head of its own query head, lambda_init from the layer index
// (not stored), and always RMSNorm without weight followed by the scale (1 - lambda_init).
#include <fmt/format.h>

#include "common/error.h"
#include "model/attention/modules.h"

namespace difftx {

namespace {

class DiffLlama final : public AttentionLayoutModule {
 public:
  AttentionLayout layout() const override { return AttentionLayout::diffllama; }

  void add_layer_params(ParamTable& t, const ModelConfig& c, const std::string& prefix, int64_t layer) const override {
    add_lambda_vectors(t, c, prefix, layer);
  }

  // The paired heads; each map uses the kv head of its own query head: k2 = kv head (i + H/2)/G.
  DiffHeadMap head_map(const ModelConfig& c) const override {
    const auto H = static_cast<int32_t>(c.num_attention_heads), G = static_cast<int32_t>(H / c.num_key_value_heads);
    return paired_heads_map(c, [&](int32_t i) { return (i + H / 2) / G; });
  }

  double lambda_init(const float*, int64_t layer) const override { return lambda_init_for_layer(layer); }
  Output output(const ModelConfig&, int64_t layer) const override {
    return {true, 1.0f - static_cast<float>(lambda_init_for_layer(layer))};
  }

  // DiffLlama pairs the model's own heads (no new rows) and always normalises each head.
  void check_conversion(const ModelConfig&, const ConvertOptions& o) const override {
    refuse_init_identity_with_head_norm(o);
    if (o.split_heads)
      fail<ConfigError>("--split-heads does not apply to --format diffllama: DiffLlama always pairs the model's own "
                        "heads (split mode is the llama-differential layout's)");
    if (o.zero_init)
      fail<ConfigError>("--zero-init does not apply to --format diffllama: DiffLlama pairs the model's own heads "
                        "(there are no new rows) and always applies (1 - lambda_init) * RMSNorm");
    if (o.mirror_weights)
      fail<ConfigError>("--mirror-weights does not apply to --format diffllama: the negative heads are the model's own");
    if (o.sublayer_norm_given && !o.sublayer_norm)
      fail<ConfigError>("--no-sublayer-norm does not apply to --format diffllama: DiffLlama always normalises each "
                        "head (RMSNorm without weight)");
  }
  void converted_config(ordered_json& raw, const ConvertOptions&) const override {
    raw["model_type"] = "diffllama";
    raw["architectures"] = {"DiffLlamaForCausalLM"};
    raw["lambda_std_dev"] = 0.1;
  }
  bool pairs_value_heads(const ConvertOptions&) const override { return true; }

  LambdaMetrics lambda_metrics(const ModelConfig& c, const LayerWeights& w, int64_t layer, float diff_attn_mix,
                               const ForwardTrace*) const override {
    return lambda_vector_metrics(*this, c, w, layer, diff_attn_mix);
  }

  std::string summary(const ModelConfig& c) const override {
    return fmt::format("diffllama (transformers' DiffLlama), base family {}", model_family_name(c.family));
  }
};

}  // namespace

const AttentionLayoutModule& diffllama_attention() {
  static const DiffLlama module;
  return module;
}

}  // namespace difftx
