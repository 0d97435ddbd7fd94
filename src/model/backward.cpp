// The backward pass of forward.cpp, layer by layer in reverse (llm.c's pattern: every *_backward
// accumulates into gradient buffers laid out like the weights).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "common/error.h"
#include "kernels/backend.h"
#include "model/attention/layout.h"
#include "model/diff_layout.h"
#include "model/layer_pass.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/trace.h"

namespace difftx {

namespace {

constexpr int64_t kLossRows = 128;  // rows of logits held at once

// What the backward of one decoder layer shares between its blocks. All pointers address the
// backend's memory (host memory: training runs on the CPU backend today).
struct LayerGradPass {
  Backend& be;
  const ModelConfig& c;
  const ForwardTrace& tr;
  const LayerTrace& a;
  const LayerWeights& w;
  const LayerGrads& gr;
  int64_t B, T, N;
  float eps;
  // LoRA training: the adapter's backward of one Linear of the layer, given its input x [N, in]
  // and output gradient dy [N, out]; accumulates into dx [N, in]. Empty without adapters.
  std::function<void(MatrixRole role, const float* x, int64_t in, const float* dy, int64_t out, float* dx)> lora;
};

// MLP block: x = h + down(act), act = silu(gate) * up, gate/up = W xn2, xn2 = norm(h). Turns dx
// (the gradient of x) into the gradient of h. act is recomputed (bit-identical) rather than kept
// in the trace: 1/7 less trace per token; its buffer then holds d_gate.
void mlp_backward(const LayerGradPass& p, std::vector<float>& dx, std::vector<float>& d_xn) {
  const int64_t N = p.N, D = p.c.hidden_size, I = p.c.intermediate_size;
  const LayerTrace& a = p.a;
  const LayerWeights& w = p.w;
  const LayerGrads& gr = p.gr;
  std::vector<float> d_act(static_cast<size_t>(N * I), 0.0f), act_then_d_gate(d_act.size());
  p.be.swiglu_forward(act_then_d_gate.data(), a.gate.data(), a.up.data(), N * I);
  p.be.linear_backward(act_then_d_gate.data(), N, I, w.down_proj, D, dx.data(), d_act.data(), gr.down_proj,
                       gr.down_bias);
  if (p.lora) p.lora(MatrixRole::down_proj, act_then_d_gate.data(), I, dx.data(), D, d_act.data());
  std::vector<float>& d_gate = act_then_d_gate;
  std::fill(d_gate.begin(), d_gate.end(), 0.0f);
  std::vector<float> d_up(d_act.size(), 0.0f);
  p.be.swiglu_backward(d_gate.data(), d_up.data(), d_act.data(), a.gate.data(), a.up.data(), N * I);
  d_xn.assign(static_cast<size_t>(N * D), 0.0f);
  p.be.linear_backward(a.xn2.data(), N, D, w.gate_proj, I, d_gate.data(), d_xn.data(), gr.gate_proj,
                       gr.gate_bias);
  p.be.linear_backward(a.xn2.data(), N, D, w.up_proj, I, d_up.data(), d_xn.data(), gr.up_proj, gr.up_bias);
  if (p.lora) {
    p.lora(MatrixRole::gate_proj, a.xn2.data(), D, d_gate.data(), I, d_xn.data());
    p.lora(MatrixRole::up_proj, a.xn2.data(), D, d_up.data(), I, d_xn.data());
  }
  p.be.rmsnorm_backward(dx.data(), gr.post_norm, d_xn.data(), a.h.data(), w.post_norm, N, D, p.eps);
}

// The attention itself: from d_att (the gradient of o_proj's input) to dq and the key and value
// gradients in the cache layout dkc, dvc. Differential layers also accumulate the gradients of
// subln and of the lambda vectors.
void attention_core_backward(const LayerGradPass& p, const DiffAttentionParams* diff, float lambda_mix,
                             const float* d_att, std::vector<float>& dq, std::vector<float>& dkc,
                             std::vector<float>& dvc) {
  const ModelConfig& c = p.c;
  const LayerTrace& a = p.a;
  const int64_t B = p.B, T = p.T, d = c.head_dim, QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d;
  const int64_t KV = c.num_key_value_heads;
  const AttentionGrads grads{dq.data(), QH * d, dkc.data(), dvc.data(), p.gr.subln};
  if (diff == nullptr) {
    const AttentionShape shape{B, T, T, T, c.num_attention_heads, KV, KV, d, c.sliding_window};
    p.be.attention_backward(shape, a.q.data(), QH * d, a.kc.data(), a.vc.data(), p.tr.segments.data(),
                            1.0f / std::sqrt(static_cast<float>(d)), a.m.data(), a.l.data(), a.att.data(), d_att,
                            grads);
    return;
  }
  // out_i = s * norm(z_i), z_i = A1_i - lambda_eff A2_i (docs/FORMATS.md §3, §4); lambda_eff = mix * lambda.
  const AttentionShape shape{B, T, T, T, QH, KH, KV, d, c.sliding_window};
  const DiffAttentionStats stats{const_cast<float*>(a.m.data()), const_cast<float*>(a.l.data()),
                                 const_cast<float*>(a.a.data())};
  const double d_lambda_eff = p.be.diff_attention_backward(shape, diff_head_map(c), *diff, a.q.data(), QH * d,
                                                           a.kc.data(), a.vc.data(), p.tr.segments.data(), stats,
                                                           d_att, grads);
  // lambda = exp(q1 · k1) - exp(q2 · k2) + lambda_init (docs/FORMATS.md §2).
  const LayerWeights& w = p.w;
  // LoRA training freezes them (lora_train_diff_params: false) or trains some (lora_modules_to_save):
  // a frozen vector's gradient goes to scratch.
  float* g[4] = {p.gr.lambda_q1, p.gr.lambda_k1, p.gr.lambda_q2, p.gr.lambda_k2};
  if (std::all_of(g, g + 4, [](float* x) { return x == nullptr; })) return;
  std::vector<float> scratch(static_cast<size_t>(4 * d));
  for (int i = 0; i < 4; ++i)
    if (g[i] == nullptr) g[i] = scratch.data() + i * d;
  diff_lambda_backward(w.lambda_q1, w.lambda_k1, w.lambda_q2, w.lambda_k2, d,
                       static_cast<float>(d_lambda_eff) * lambda_mix, g[0], g[1], g[2], g[3]);
}

// diff-v2 (spec §8): out_i = A_2i V - mix * sigmoid(z_i) A_2i+1 V over the 2H query heads'
// ordinary attention. From d_att to dq, dkc, dvc (through the standard attention backward of the
// 2H heads) and to d_z, the gradient of the lambda logits z = xn · lambda_proj^T.
void paired_attention_backward(const LayerGradPass& p, float mix, const float* d_att, std::vector<float>& dq,
                               std::vector<float>& dkc, std::vector<float>& dvc, std::vector<float>& d_z) {
  const ModelConfig& c = p.c;
  const LayerTrace& a = p.a;
  const int64_t B = p.B, T = p.T, N = p.N, H = c.num_attention_heads, KV = c.num_key_value_heads, d = c.head_dim;
  const int64_t QH = c.q_proj_rows() / d;
  std::vector<float> d_pairs(static_cast<size_t>(N * QH * d), 0.0f);
  d_z.assign(static_cast<size_t>(N * H), 0.0f);
  p.be.lambda_combine_backward(a.a.data(), a.lambda_logits.data(), mix, d_att, N, H, d, d_pairs.data(), d_z.data());
  const AttentionShape shape{B, T, T, T, QH, KV, KV, d, c.sliding_window};
  const AttentionGrads grads{dq.data(), QH * d, dkc.data(), dvc.data(), nullptr};
  p.be.attention_backward(shape, a.q.data(), QH * d, a.kc.data(), a.vc.data(), p.tr.segments.data(),
                          1.0f / std::sqrt(static_cast<float>(d)), a.m.data(), a.l.data(), a.a.data(), d_pairs.data(),
                          grads);
}

// Back through RoPE, the q/k norms and the q/k/v projections (and diff-v2's lambda_proj, given
// d_z) to the gradient of x_in (into dx).
void qkv_backward(const LayerGradPass& p, std::vector<float>& dq, const std::vector<float>& dkc,
                  const std::vector<float>& dvc, const std::vector<float>& d_z, std::vector<float>& d_xn,
                  std::vector<float>& dx) {
  const ModelConfig& c = p.c;
  const LayerTrace& a = p.a;
  const LayerWeights& w = p.w;
  const LayerGrads& gr = p.gr;
  const int64_t N = p.N, D = c.hidden_size, d = c.head_dim, QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d;
  const int64_t KV = c.num_key_value_heads;
  std::vector<float> dk(static_cast<size_t>(N * KH * d), 0.0f), dv(static_cast<size_t>(N * KV * d), 0.0f);
  p.be.cache_rows_add(dkc.data(), p.B, p.T, KH, d, dk.data());
  p.be.cache_rows_add(dvc.data(), p.B, p.T, KV, d, dv.data());
  p.be.rope_backward(dq.data(), N, QH, d, QH * d, p.tr.cos.data(), p.tr.sin.data());
  p.be.rope_backward(dk.data(), N, KH, d, KH * d, p.tr.cos.data(), p.tr.sin.data());
  if (w.q_norm) {
    std::vector<float> dq_lin(dq.size(), 0.0f), dk_lin(dk.size(), 0.0f);
    p.be.rmsnorm_backward(dq_lin.data(), gr.q_norm, dq.data(), a.q_lin.data(), w.q_norm, N * QH, d, p.eps);
    p.be.rmsnorm_backward(dk_lin.data(), gr.k_norm, dk.data(), a.k_lin.data(), w.k_norm, N * KH, d, p.eps);
    dq.swap(dq_lin);
    dk.swap(dk_lin);
  }
  std::fill(d_xn.begin(), d_xn.end(), 0.0f);
  p.be.linear_backward(a.xn1.data(), N, D, w.q_proj, QH * d, dq.data(), d_xn.data(), gr.q_proj, gr.q_bias);
  p.be.linear_backward(a.xn1.data(), N, D, w.k_proj, KH * d, dk.data(), d_xn.data(), gr.k_proj, gr.k_bias);
  p.be.linear_backward(a.xn1.data(), N, D, w.v_proj, KV * d, dv.data(), d_xn.data(), gr.v_proj, gr.v_bias);
  if (!d_z.empty())
    p.be.linear_backward(a.xn1.data(), N, D, w.lambda_proj, c.num_attention_heads, d_z.data(), d_xn.data(),
                         gr.lambda_proj, nullptr);
  if (p.lora) {
    p.lora(MatrixRole::q_proj, a.xn1.data(), D, dq.data(), QH * d, d_xn.data());
    p.lora(MatrixRole::k_proj, a.xn1.data(), D, dk.data(), KH * d, d_xn.data());
    p.lora(MatrixRole::v_proj, a.xn1.data(), D, dv.data(), KV * d, d_xn.data());
    if (!d_z.empty()) p.lora(MatrixRole::lambda_proj, a.xn1.data(), D, d_z.data(), c.num_attention_heads, d_xn.data());
  }
  p.be.rmsnorm_backward(dx.data(), gr.input_norm, d_xn.data(), a.x_in.data(), w.input_norm, N, D, p.eps);
}

}  // namespace

float* Model::grad_at(const ParamSpec* p, float* grads) const {
  if (p == nullptr) return nullptr;
  if (!lora_train_) return grads + p->offset;
  const int64_t at = lora_train_->grad_offset[static_cast<size_t>(p - table_.params().data())];
  return at < 0 ? nullptr : grads + at;
}

void Model::layer_backward(int64_t l, const ForwardTrace& tr, const LayerTrace& layer, const ForwardOptions& options,
                           std::vector<float>& dx, float* grads) const {
  const float diff_attn_mix = options.diff_attn_mix;
  const ModelConfig& c = config_;
  const int64_t B = tr.batch, T = tr.seq_len, N = B * T;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads, d = c.head_dim;
  const int64_t QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d;
  auto at = [&](const ParamSpec* p) { return grad_at(p, grads); };
  const LayerGrads gr = map_layer<float*, float*>(layer_index_[l], at, at);
  LayerGradPass p{*backend_, c, tr, layer, layers_[l], gr, B, T, N, static_cast<float>(c.rms_norm_eps), {}};
  if (lora_train_)
    p.lora = [&, l](MatrixRole role, const float* x, int64_t in, const float* dy, int64_t out, float* d_x) {
      lora_backward(l, role, x, N, in, dy, out, d_x, grads, options.lora_dropout_seed);
    };

  std::vector<float> d_xn;
  mlp_backward(p, dx, d_xn);  // dx is now the gradient of h

  // Attention block: h = x_in + o_proj(att).
  std::vector<float> d_att(static_cast<size_t>(N * H * d), 0.0f);
  backend_->linear_backward(p.a.att.data(), N, H * d, p.w.o_proj, D, dx.data(), d_att.data(), gr.o_proj,
                            gr.o_bias);
  if (p.lora) p.lora(MatrixRole::o_proj, p.a.att.data(), H * d, dx.data(), D, d_att.data());
  std::vector<float> dq(static_cast<size_t>(N * QH * d), 0.0f);
  std::vector<float> dkc(static_cast<size_t>(B * KH * T * d), 0.0f), dvc(static_cast<size_t>(B * KV * T * d), 0.0f);
  const AttentionLayoutModule& layout = layout_module(c);
  const float mix = layout.warmup_mix() ? diff_attn_mix : 1.0f;
  std::vector<float> d_z;  // diff-v2: the gradient of the lambda logits
  if (layout.per_token_lambda()) {
    paired_attention_backward(p, mix, d_att.data(), dq, dkc, dvc, d_z);
  } else if (c.is_differential()) {
    const DiffAttentionParams diff = diff_params(l, diff_attn_mix);
    attention_core_backward(p, &diff, mix, d_att.data(), dq, dkc, dvc);
  } else {
    attention_core_backward(p, nullptr, 1.0f, d_att.data(), dq, dkc, dvc);
  }
  qkv_backward(p, dq, dkc, dvc, d_z, d_xn, dx);  // dx is now the gradient of x_in
}

double Model::head_loss(const float* hidden, std::span<const int32_t> targets, float grad_scale, float* d_hidden,
                         float* g_head) const {
  const int64_t N = static_cast<int64_t>(targets.size()), D = config_.hidden_size, V = config_.vocab_size;
  for (int32_t t : targets)
    if (t != kIgnoreIndex && (t < 0 || t >= V))
      fail<ShapeError>("loss: target id {} is outside the vocabulary [0, {})", t, V);
  // lm_head in chunks of rows: no [N, V] buffer.
  std::vector<float> logits(static_cast<size_t>(kLossRows * V));
  double loss = 0.0;
  for (int64_t r0 = 0; r0 < N; r0 += kLossRows) {
    const int64_t rows = std::min(kLossRows, N - r0);
    bool any = false;
    for (int64_t r = r0; r < r0 + rows; ++r) any = any || targets[r] != kIgnoreIndex;
    if (!any) continue;
    lm_head_forward(hidden + r0 * D, rows, logits.data());
    const bool grad = d_hidden != nullptr;
    loss += backend_->cross_entropy_host(logits.data(), &targets[r0], rows, V, grad_scale, grad);
    if (grad)
      backend_->linear_backward(hidden + r0 * D, rows, D, lm_head_, V, logits.data(), d_hidden + r0 * D, g_head,
                                nullptr);
  }
  return loss;
}

double Model::loss(const TokenBatch& batch, std::span<const int32_t> targets, const ForwardOptions& options) const {
  if (static_cast<int64_t>(targets.size()) != batch.batch * batch.seq_len)
    fail<ShapeError>("loss: {} targets for {} positions", targets.size(), batch.batch * batch.seq_len);
  const Buffer hidden = forward_on_backend(batch, nullptr, LogitsMode::hidden, nullptr, options);
  const int64_t N = static_cast<int64_t>(targets.size()), D = config_.hidden_size;
  double loss = 0.0;
  for (int64_t r0 = 0; r0 < N; r0 += kLossRows) {  // lm_head in chunks of rows: no [N, V] buffer
    const int64_t rows = std::min(kLossRows, N - r0);
    if (std::all_of(&targets[r0], &targets[r0] + rows, [](int32_t t) { return t == kIgnoreIndex; })) continue;
    loss += next_token_nll(hidden.as<const float>() + r0 * D, rows, &targets[r0]);
  }
  return loss;
}

double Model::loss_and_backward(const TokenBatch& batch, std::span<const int32_t> targets, float grad_scale,
                                std::span<float> grads, ForwardTrace& trace, const ForwardOptions& options,
                                const std::function<void(int64_t layer)>& layer_done) const {
  if (matrices_in_bf16() && !lora_train_)
    throw std::logic_error("loss_and_backward: the matrices are kept in bf16 (inference and LoRA training only)");
  if (on_device()) throw std::logic_error("loss_and_backward: the model is on " + backend_->name() + " (inference only)");
  if (has_lora() && !lora_train_)
    throw std::logic_error("loss_and_backward: a LoRA adapter is attached (inference only; train_lora trains one)");
  const ModelConfig& c = config_;
  const int64_t N = batch.batch * batch.seq_len, D = c.hidden_size;
  if (static_cast<int64_t>(targets.size()) != N)
    fail<ShapeError>("loss_and_backward: {} targets for {} positions", targets.size(), N);
  if (grads.size() != trained_weights().size())
    fail<ShapeError>("loss_and_backward: gradient buffer of the wrong size");
  std::vector<float> hidden;
  forward(batch, nullptr, LogitsMode::hidden, hidden, &trace, options);
  float* g_head = grad_at(head_index_.lm_head, grads.data());
  std::vector<float> d_xnf(static_cast<size_t>(N * D), 0.0f);
  const double loss = head_loss(trace.xnf.data(), targets, grad_scale, d_xnf.data(), g_head);
  std::vector<float> dx(static_cast<size_t>(N * D), 0.0f);
  backend_->rmsnorm_backward(dx.data(), grad_at(head_index_.final_norm, grads.data()), d_xnf.data(),
                             trace.x_final.data(), final_norm_, N, D, static_cast<float>(c.rms_norm_eps));
  if (options.recompute_activations) {
    // Each layer runs forward again from its kept input, into the trace's one work LayerTrace.
    Backend& be = *backend_;
    const int64_t B = batch.batch, T = batch.seq_len;
    const PassBuffers buffers = pass_buffers(be, c, N, lora_rank_);
    Buffer scratch_k = be.alloc_array<float>(N * c.k_proj_rows());
    Buffer scratch_v = be.alloc_array<float>(N * c.num_key_value_heads * c.head_dim);
    LayerPass pass = layer_pass(be, buffers, B, T, 0, T, trace.cos.data(), trace.sin.data(), trace.segments.data(),
                                nullptr, scratch_k.as<float>(), scratch_v.as<float>(), nullptr, options.diff_attn_mix);
    pass.work = &trace.work;
    pass.lora_dropout_seed = options.lora_dropout_seed;
    const std::vector<int64_t>& kept = options.kept_layers;
    for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) {
      const LayerTrace& layer = trace.layers[static_cast<size_t>(l)];
      if (std::count(kept.begin(), kept.end(), l) > 0) {
        layer_backward(l, trace, layer, options, dx, grads.data());
      } else if (l == c.num_hidden_layers - 1) {  // the forward's last layer is still in the work trace
        layer_backward(l, trace, trace.work, options, dx, grads.data());
      } else {
        be.upload(pass.x, layer.x_in.data(), layer.x_in.size() * sizeof(float));
        layer_forward(l, pass);
        layer_backward(l, trace, trace.work, options, dx, grads.data());
      }
      if (layer_done) layer_done(l);
    }
  } else {
    for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) {
      layer_backward(l, trace, trace.layers[static_cast<size_t>(l)], options, dx, grads.data());
      if (layer_done) layer_done(l);
    }
  }
  if (float* g_embed = grad_at(head_index_.embed, grads.data()))
    backend_->embedding_backward(batch.ids.data(), N, dx.data(), D, g_embed);
  return loss;
}

}  // namespace difftx
