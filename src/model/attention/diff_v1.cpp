// The paper's own formulation (spec §7; Ye et al., arXiv 2410.05258, §2.1, and Microsoft's
// multihead_diffattn.py): the model's own heads paired ADJACENTLY (diff-head i = query heads 2i and
// 2i+1, H/2 diff-heads of value width 2d), lambda_init from the layer index (not stored), a learned
// RMSNorm over 2d ("subln", one weight per layer shared by its heads) and the scale (1 - lambda_init).
#include <fmt/format.h>

#include "common/error.h"
#include "model/attention/modules.h"

namespace difftx {

namespace {

class DiffV1 final : public AttentionLayoutModule {
 public:
  AttentionLayout layout() const override { return AttentionLayout::diff_v1; }

  void add_layer_params(ParamTable& t, const ModelConfig& c, const std::string& prefix, int64_t layer) const override {
    add_lambda_vectors(t, c, prefix, layer);
    t.add(prefix + "self_attn.subln.weight", {c.diff_value_width()}, ParamInit::ones);
  }

  // G = H / KV. Diff-head i: q1 = query head 2i, q2 = query head 2i+1; every query head j reads kv
  // head j / G, as in the base model (Microsoft's code expands the 2*KV/2 key heads with
  // repeat_interleave by n_rep = (H/2)/(KV/2) = G: expanded head j is kv head j / G); value =
  // [v_2g ; v_2g+1] with g = i / G (v viewed as KV/2 heads of width 2d, expanded the same way).
  // For GQA this reads the spec's "keys 2g and 2g+1" differently (there the second map of i = 0 would
  // read kv head 1); the named source is the code, so its reading is the one implemented.
  DiffHeadMap head_map(const ModelConfig& c) const override {
    const auto H = static_cast<int32_t>(c.num_attention_heads), G = static_cast<int32_t>(H / c.num_key_value_heads);
    DiffHeadMap m;
    m.value_heads = 2;
    for (int32_t i = 0; i < H / 2; ++i) {
      m.q1.push_back(2 * i);
      m.q2.push_back(2 * i + 1);
      m.k1.push_back(2 * i / G);
      m.k2.push_back((2 * i + 1) / G);
      m.v.push_back(2 * (i / G));
      m.v.push_back(2 * (i / G) + 1);
    }
    return m;
  }

  double lambda_init(const float*, int64_t layer) const override { return lambda_init_for_layer(layer); }
  // The seed's warm-up ramp is a training choice, not part of the layout: it scales lambda here as in §3.
  bool warmup_mix() const override { return true; }
  Output output(const ModelConfig&, int64_t layer) const override {
    return {true, 1.0f - static_cast<float>(lambda_init_for_layer(layer))};
  }

  // The heads are regrouped, not resized: no new rows, the learned subln always on.
  void check_conversion(const ModelConfig& base, const ConvertOptions& o) const override {
    refuse_init_identity_with_head_norm(o);
    for (auto [given, flag] : {std::pair{o.split_heads, "--split-heads"}, {o.zero_init, "--zero-init"},
                               {o.mirror_weights, "--mirror-weights"}})
      if (given)
        fail<ConfigError>("{} does not apply to --format diff-v1: diff-v1 pairs the model's own adjacent heads (there "
                          "are no new rows)",
                          flag);
    if (o.sublayer_norm_given && !o.sublayer_norm)
      fail<ConfigError>("--no-sublayer-norm does not apply to --format diff-v1: the paper's layout always normalises "
                        "each head (learned subln over 2 * head_dim)");
    if (base.num_attention_heads % 2 != 0 || base.num_key_value_heads % 2 != 0)
      fail<ConfigError>("--format diff-v1 needs even numbers of attention and key/value heads, but the model has {} "
                        "and {}",
                        base.num_attention_heads, base.num_key_value_heads);
  }
  void converted_config(ordered_json& raw, const ConvertOptions&) const override {
    raw["model_type"] = "diff-v1";
    raw["architectures"] = {"DiffV1ForCausalLM"};
  }

  LambdaMetrics lambda_metrics(const ModelConfig& c, const LayerWeights& w, int64_t layer, float diff_attn_mix,
                               const ForwardTrace*) const override {
    return lambda_vector_metrics(*this, c, w, layer, diff_attn_mix);
  }

  std::string summary(const ModelConfig& c) const override {
    return fmt::format("diff-v1 (the paper's layout: adjacent head pairs, learned subln, 1 - lambda_init), base "
                       "family {}",
                       model_family_name(c.family));
  }
};

}  // namespace

const AttentionLayoutModule& diff_v1_attention() {
  static const DiffV1 module;
  return module;
}

}  // namespace difftx
