// One decoder layer's parameters by role (llm.c's ParamTensors, per layer): the same struct holds
// the table entries (LayerIndex, built once from the names), the weights' addresses (LayerWeights)
// and the gradients' addresses (LayerGrads), so that nothing is looked up by name per step.
// M is the type for matrices, V for every other tensor; a role the config lacks holds M{} / V{}
// (nullptr). Shapes (spec §1, §3, §4, §7, §8; H = num_attention_heads, KV = num_key_value_heads, d =
// head_dim, D = hidden_size, I = intermediate_size, w = value width d or 2d):
#pragma once

#include <cstdint>

#include "kernels/op_types.h"
#include "model/params.h"

namespace difftx {

template <class M, class V>
struct LayerTensors {
  V input_norm;             // [D]
  M q_proj; V q_bias;       // [H*d, D], [H*d] (double mode and diff-v2: [2*H*d, D], [2*H*d])
  M k_proj; V k_bias;       // [KV*d, D], [KV*d] (double mode: [2*KV*d, D], [2*KV*d])
  M v_proj; V v_bias;       // [KV*d, D], [KV*d]
  M o_proj; V o_bias;       // [D, H*d], [D]
  V q_norm, k_norm;         // [d] (qwen3)
  V lambda_init;            // [] (llama-differential; diffllama recomputes it)
  V lambda_q1, lambda_k1;   // [d] (differential layouts)
  V lambda_q2, lambda_k2;   // [d]
  V subln;                  // [w] (llama-differential with sublayer_norm, diff-v1)
  M lambda_proj;            // [H, D] (diff-v2: lambda = sigmoid(x · lambda_proj[i]) per token)
  V post_norm;              // [D]
  M gate_proj; V gate_bias; // [I, D], [I]
  M up_proj; V up_bias;     // [I, D], [I]
  M down_proj; V down_bias; // [D, I], [D]
};

// The same roles with each entry mapped: matrices through fm, the other tensors through fv.
template <class M2, class V2, class M, class V, class FM, class FV>
LayerTensors<M2, V2> map_layer(const LayerTensors<M, V>& in, FM&& fm, FV&& fv) {
  return {.input_norm = fv(in.input_norm),
          .q_proj = fm(in.q_proj), .q_bias = fv(in.q_bias),
          .k_proj = fm(in.k_proj), .k_bias = fv(in.k_bias),
          .v_proj = fm(in.v_proj), .v_bias = fv(in.v_bias),
          .o_proj = fm(in.o_proj), .o_bias = fv(in.o_bias),
          .q_norm = fv(in.q_norm), .k_norm = fv(in.k_norm),
          .lambda_init = fv(in.lambda_init),
          .lambda_q1 = fv(in.lambda_q1), .lambda_k1 = fv(in.lambda_k1),
          .lambda_q2 = fv(in.lambda_q2), .lambda_k2 = fv(in.lambda_k2),
          .subln = fv(in.subln),
          .lambda_proj = fm(in.lambda_proj),
          .post_norm = fv(in.post_norm),
          .gate_proj = fm(in.gate_proj), .gate_bias = fv(in.gate_bias),
          .up_proj = fm(in.up_proj), .up_bias = fv(in.up_bias),
          .down_proj = fm(in.down_proj), .down_bias = fv(in.down_bias)};
}

// The Linear layers of a decoder layer (the matrix roles above but for lambda_proj's place), by
// the module's last name in Hugging Face paths (matrix_role_name: "q_proj", ...).
enum class MatrixRole { q_proj, k_proj, v_proj, o_proj, lambda_proj, gate_proj, up_proj, down_proj };
inline constexpr MatrixRole kMatrixRoles[] = {MatrixRole::q_proj,      MatrixRole::k_proj,    MatrixRole::v_proj,
                                              MatrixRole::o_proj,      MatrixRole::lambda_proj, MatrixRole::gate_proj,
                                              MatrixRole::up_proj,     MatrixRole::down_proj};
const char* matrix_role_name(MatrixRole role);

template <class M, class V>
M& matrix_of(LayerTensors<M, V>& t, MatrixRole role) {
  switch (role) {
    case MatrixRole::q_proj: return t.q_proj;
    case MatrixRole::k_proj: return t.k_proj;
    case MatrixRole::v_proj: return t.v_proj;
    case MatrixRole::o_proj: return t.o_proj;
    case MatrixRole::lambda_proj: return t.lambda_proj;
    case MatrixRole::gate_proj: return t.gate_proj;
    case MatrixRole::up_proj: return t.up_proj;
    case MatrixRole::down_proj: break;
  }
  return t.down_proj;
}
template <class M, class V>
const M& matrix_of(const LayerTensors<M, V>& t, MatrixRole role) {
  return matrix_of(const_cast<LayerTensors<M, V>&>(t), role);
}

using LayerIndex = LayerTensors<const ParamSpec*, const ParamSpec*>;
// Pointers into the weight buffers for one decoder layer; nullptr where the config has no such
// parameter (biases, q/k norms). Linear weights are float32 or, after keep_matrices_in_bf16(),
// bfloat16. They address the model's backend memory (host memory unless the model was placed on
// a device).
using LayerWeights = LayerTensors<LinearWeight, const float*>;
using LayerGrads = LayerTensors<float*, float*>;

// The table entries of decoder layer `layer` (Hugging Face names, model.layers.<l>.*).
LayerIndex layer_index(const ParamTable& table, int64_t layer);

}  // namespace difftx
