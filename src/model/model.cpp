#include "model/model.h"

#include <fmt/format.h>

#include <new>

#include "common/error.h"

namespace difftx {

ParamTable llama_param_table(const ModelConfig& c) {
  const int64_t D = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, d = c.head_dim;
  ParamTable t;
  t.add("model.embed_tokens.weight", {V, D}, ParamInit::normal);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    t.add(p + "input_layernorm.weight", {D}, ParamInit::ones);
    auto linear = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
      t.add(p + name + ".weight", {out, in}, ParamInit::normal);
      if (bias) t.add(p + name + ".bias", {out}, ParamInit::zeros);
    };
    linear("self_attn.q_proj", c.q_proj_rows(), D, c.qkv_bias());
    linear("self_attn.k_proj", c.k_proj_rows(), D, c.qkv_bias());
    linear("self_attn.v_proj", c.kv_dim(), D, c.qkv_bias());
    linear("self_attn.o_proj", D, c.q_dim(), c.o_bias());
    if (c.qk_norm()) {
      t.add(p + "self_attn.q_norm.weight", {d}, ParamInit::ones);
      t.add(p + "self_attn.k_norm.weight", {d}, ParamInit::ones);
    }
    if (c.layout == AttentionLayout::llama_differential)
      t.add(p + "self_attn.lambda_init", {}, ParamInit::lambda_init, l);  // 0-dim: the value is stored
    if (c.is_differential())
      for (const char* name : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"})
        t.add(p + "self_attn." + name, {d}, ParamInit::lambda, l);
    if (c.layout == AttentionLayout::llama_differential && c.sublayer_norm)
      t.add(p + "self_attn.subln.weight", {c.diff_value_width()}, ParamInit::ones);
    t.add(p + "post_attention_layernorm.weight", {D}, ParamInit::ones);
    linear("mlp.gate_proj", I, D, c.mlp_bias);
    linear("mlp.up_proj", I, D, c.mlp_bias);
    linear("mlp.down_proj", D, I, c.mlp_bias);
  }
  t.add("model.norm.weight", {D}, ParamInit::ones);
  if (!c.tie_word_embeddings) t.add("lm_head.weight", {V, D}, ParamInit::normal);
  return t;
}

Model::Model(ModelConfig config) : config_(std::move(config)), table_(llama_param_table(config_)) {
  try {
    weights_.assign(table_.buffer_floats(), 0.0f);
  } catch (const std::bad_alloc&) {
    fail<ConfigError>("{} parameters ({:.2f} GB as float32) do not fit in memory", table_.parameter_count(),
                      static_cast<double>(table_.buffer_floats()) * 4e-9);
  } catch (const std::length_error&) {
    fail<ConfigError>("{} parameters do not fit in memory", table_.parameter_count());
  }
  bind();
}

float* Model::param(std::string_view name) { return weights_.data() + table_.at(name).offset; }
const float* Model::param(std::string_view name) const { return weights_.data() + table_.at(name).offset; }

void Model::bind() {
  auto get = [&](const std::string& name) -> const float* {
    const ParamSpec* p = table_.find(name);
    return p == nullptr ? nullptr : weights_.data() + p->offset;
  };
  embed_ = get("model.embed_tokens.weight");
  final_norm_ = get("model.norm.weight");
  lm_head_ = config_.tie_word_embeddings ? embed_ : get("lm_head.weight");
  layers_.clear();
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    LayerWeights w{};
    w.input_norm = get(p + "input_layernorm.weight");
    w.q_proj = get(p + "self_attn.q_proj.weight");
    w.q_bias = get(p + "self_attn.q_proj.bias");
    w.k_proj = get(p + "self_attn.k_proj.weight");
    w.k_bias = get(p + "self_attn.k_proj.bias");
    w.v_proj = get(p + "self_attn.v_proj.weight");
    w.v_bias = get(p + "self_attn.v_proj.bias");
    w.o_proj = get(p + "self_attn.o_proj.weight");
    w.o_bias = get(p + "self_attn.o_proj.bias");
    w.q_norm = get(p + "self_attn.q_norm.weight");
    w.k_norm = get(p + "self_attn.k_norm.weight");
    w.lambda_init = get(p + "self_attn.lambda_init");
    w.lambda_q1 = get(p + "self_attn.lambda_q1");
    w.lambda_k1 = get(p + "self_attn.lambda_k1");
    w.lambda_q2 = get(p + "self_attn.lambda_q2");
    w.lambda_k2 = get(p + "self_attn.lambda_k2");
    w.subln = get(p + "self_attn.subln.weight");
    w.post_norm = get(p + "post_attention_layernorm.weight");
    w.gate_proj = get(p + "mlp.gate_proj.weight");
    w.gate_bias = get(p + "mlp.gate_proj.bias");
    w.up_proj = get(p + "mlp.up_proj.weight");
    w.up_bias = get(p + "mlp.up_proj.bias");
    w.down_proj = get(p + "mlp.down_proj.weight");
    w.down_bias = get(p + "mlp.down_proj.bias");
    layers_.push_back(w);
  }
}

}  // namespace difftx
