#include "model/layer_tensors.h"

#include <fmt/format.h>

namespace difftx {

LayerIndex layer_index(const ParamTable& t, int64_t layer) {
  const std::string p = fmt::format("model.layers.{}.", layer);
  auto at = [&](const char* name) { return t.find(p + name); };
  return {.input_norm = at("input_layernorm.weight"),
          .q_proj = at("self_attn.q_proj.weight"), .q_bias = at("self_attn.q_proj.bias"),
          .k_proj = at("self_attn.k_proj.weight"), .k_bias = at("self_attn.k_proj.bias"),
          .v_proj = at("self_attn.v_proj.weight"), .v_bias = at("self_attn.v_proj.bias"),
          .o_proj = at("self_attn.o_proj.weight"), .o_bias = at("self_attn.o_proj.bias"),
          .q_norm = at("self_attn.q_norm.weight"), .k_norm = at("self_attn.k_norm.weight"),
          .lambda_init = at("self_attn.lambda_init"),
          .lambda_q1 = at("self_attn.lambda_q1"), .lambda_k1 = at("self_attn.lambda_k1"),
          .lambda_q2 = at("self_attn.lambda_q2"), .lambda_k2 = at("self_attn.lambda_k2"),
          .subln = at("self_attn.subln.weight"),
          .lambda_proj = at("self_attn.lambda_proj.weight"),
          .post_norm = at("post_attention_layernorm.weight"),
          .gate_proj = at("mlp.gate_proj.weight"), .gate_bias = at("mlp.gate_proj.bias"),
          .up_proj = at("mlp.up_proj.weight"), .up_bias = at("mlp.up_proj.bias"),
          .down_proj = at("mlp.down_proj.weight"), .down_bias = at("mlp.down_proj.bias")};
}

const char* matrix_role_name(MatrixRole role) {
  switch (role) {
    case MatrixRole::q_proj: return "q_proj";
    case MatrixRole::k_proj: return "k_proj";
    case MatrixRole::v_proj: return "v_proj";
    case MatrixRole::o_proj: return "o_proj";
    case MatrixRole::lambda_proj: return "lambda_proj";
    case MatrixRole::gate_proj: return "gate_proj";
    case MatrixRole::up_proj: return "up_proj";
    case MatrixRole::down_proj: break;
  }
  return "down_proj";
}

}  // namespace difftx
