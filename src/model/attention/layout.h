// One module per attention layout: everything that differs between the standard attention of a
// Llama-family model (spec §1), the seed's llama-differential layout (spec §3), transformers'
// DiffLlama (spec §4), the paper's diff-v1 (spec §7) and Microsoft's diff-v2 (spec §8). The parameter table, the forward and backward passes, the monitor and
// inspect ask the model's layout module instead of switching on the layout; layout_module() is the
// only switch. A new layout is one new file here plus its entry in layout.cpp and model_config's
// parser (see docs/ARCHITECTURE.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "io/json_file.h"
#include "io/model_config.h"
#include "kernels/op_types.h"
#include "model/attention/conversion.h"
#include "model/layer_tensors.h"
#include "model/params.h"
#include "model/trace.h"

namespace difftx {

// lambda_init(l) = 0.8 - 0.6 exp(-0.3 l) (Ye et al., arXiv 2410.05258, eq. 2; l counts layers from 0).
double lambda_init_for_layer(int64_t layer);

class AttentionLayoutModule {
 public:
  virtual ~AttentionLayoutModule() = default;
  virtual AttentionLayout layout() const = 0;
  virtual bool differential() const { return true; }
  // How the attention runs. false: the fused kernel of two softmax maps per differential head
  // (head_map, output) with one lambda per layer from the lambda vectors (diff_layout.h). true:
  // ordinary attention over all of q_proj's heads, whose pairs (2i, 2i+1) are then combined as
  // A_2i V - mix * lambda[t, i] A_2i+1 V with lambda = sigmoid(x_t · lambda_proj[i]) per token and
  // head (diff-v2, spec §8): the standard attention kernels and the base model's KV cache.
  virtual bool per_token_lambda() const { return false; }
  // Whether the layer has one lambda from the four lambda vectors (Model::layer_lambda).
  bool lambda_per_layer() const { return differential() && !per_token_lambda(); }

  // Appends the layout's own tensors of one decoder layer (names under `prefix`, e.g.
  // "model.layers.3."), after the q/k norms: lambda_init, the lambda vectors, subln.
  virtual void add_layer_params(ParamTable& table, const ModelConfig& config, const std::string& prefix,
                                int64_t layer) const = 0;
  // Which query, key and value heads each differential head uses (kernels/op_types.h); fused
  // layouts only.
  virtual DiffHeadMap head_map(const ModelConfig& config) const = 0;
  // lambda_init of a layer: stored in the checkpoint, or the formula of its index.
  virtual double lambda_init(const float* stored_lambda_init, int64_t layer) const = 0;
  // Whether the training warm-up mix scales lambda (lambda_eff = mix * lambda: the seed's warm-up).
  virtual bool warmup_mix() const { return false; }
  // What follows z = A1 - lambda_eff * A2 per differential head: an RMSNorm over the value width
  // (with the layer's subln weight when the checkpoint has one) and a constant scale.
  struct Output {
    bool norm = false;
    float scale = 1.0f;
  };
  virtual Output output(const ModelConfig& config, int64_t layer) const = 0;

  // ---- the training monitor (train/diff_monitor; the seed's keys) ----
  // One layer's lambda statistics: per_layer values are logged as layer_{l}/<name> for monitored
  // layers; aggregated values are collected over all layers and logged as
  // aggregate/<name>_{mean,std}. Both in the order they are logged. diff_attn_mix: the forward's
  // warm-up mix (a layout without warm-up ignores it); last: the last training forward's trace
  // (per-token lambdas), or nullptr.
  struct LambdaMetrics {
    std::vector<std::pair<std::string, double>> per_layer, aggregated;
  };
  virtual LambdaMetrics lambda_metrics(const ModelConfig& config, const LayerWeights& weights, int64_t layer,
                                       float diff_attn_mix, const ForwardTrace* last) const = 0;

  // ---- conversion from a standard model (docs/FORMATS.md §5) ----
  // Throws ConfigError naming the flag when `options` do not apply to this layout or to `base`
  // (the checks common to every layout are convert_options_check's).
  virtual void check_conversion(const ModelConfig& base, const ConvertOptions& options) const = 0;
  // The layout's keys of the converted config.json (model_type, architectures, its flags).
  virtual void converted_config(ordered_json& raw, const ConvertOptions& options) const = 0;
  // Whether the converted model regroups the base's value heads in pairs (i, i + H/2), so that
  // o_proj's input column blocks are permuted to follow them (unless options.plain_o_proj).
  virtual bool pairs_value_heads(const ConvertOptions& options) const { return false; }
  // Whether the converted model computes exactly the base model's function (convert --debug then
  // expects "match").
  virtual bool conversion_is_exact(const ConvertOptions& options) const { return false; }
  // Where the base's query heads go when the converted q_proj has twice the base's rows: appended
  // (double mode: the base rows are q1, the new rows q2) or interleaved (diff-v2: head 2i is base
  // head i, head 2i+1 is new).
  enum class NewQueryRows { appended, interleaved };
  virtual NewQueryRows new_query_rows() const { return NewQueryRows::appended; }
  // The factor o_proj is copied with (diff-v2's identity conversion doubles it: lambda = 1/2).
  virtual float o_proj_scale(const ConvertOptions& options) const { return 1.0f; }

  // inspect: the layout's line of text ("" for standard attention) and its JSON keys.
  virtual std::string summary(const ModelConfig& config) const = 0;
  virtual void describe(const ModelConfig& config, ordered_json& json) const { (void)config, (void)json; }
};

// The module of a layout, or of a config's layout (a static instance per layout).
const AttentionLayoutModule& layout_module(AttentionLayout layout);
const AttentionLayoutModule& layout_module(const ModelConfig& config);

}  // namespace difftx
