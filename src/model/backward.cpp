// The backward pass of forward.cpp, layer by layer in reverse (llm.c's pattern: every *_backward
// accumulates into gradient buffers laid out like the weights).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/error.h"
#include "kernels/cpu/attention_backward.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "model/attention/layout.h"
#include "model/diff_layout.h"
#include "model/model.h"
#include "model/trace.h"

namespace difftx {

namespace {

constexpr int64_t kLossRows = 128;  // rows of logits held at once

// [B, heads, T, d] (cache layout) -> [B*T, heads*d] (projection layout), accumulating.
void gather_heads_add(const float* src, int64_t B, int64_t T, int64_t heads, int64_t d, float* dst) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const float* s = src + ((b * heads + h) * T + t) * d;
        float* o = dst + ((b * T + t) * heads + h) * d;
        for (int64_t x = 0; x < d; ++x) o[x] += s[x];
      }
}

}  // namespace

void Model::layer_backward(int64_t l, const ForwardTrace& tr, std::vector<float>& dx, float* grads) const {
  const ModelConfig& c = config_;
  const LayerTrace& a = tr.layers[l];
  const LayerWeights& w = layers_[l];
  const int64_t B = tr.batch, T = tr.seq_len, N = B * T;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads, d = c.head_dim;
  const int64_t QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d, I = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const LayerGrads gr = layer_grads(layer_index_[l], grads);

  // MLP block: x = h + down(act), act = silu(gate) * up, gate/up = W xn2, xn2 = norm(h).
  // act is recomputed (bit-identical) rather than kept in the trace: 1/7 less trace per token; its
  // buffer then holds d_gate.
  std::vector<float> d_act(static_cast<size_t>(N * I), 0.0f), act_then_d_gate(d_act.size());
  swiglu_forward(act_then_d_gate.data(), a.gate.data(), a.up.data(), N * I);
  linear_backward(act_then_d_gate.data(), N, I, w.down_proj.f32, D, dx.data(), d_act.data(), gr.down_proj,
                  gr.down_bias);
  std::vector<float>& d_gate = act_then_d_gate;
  std::fill(d_gate.begin(), d_gate.end(), 0.0f);
  std::vector<float> d_up(d_act.size(), 0.0f);
  swiglu_backward(d_gate.data(), d_up.data(), d_act.data(), a.gate.data(), a.up.data(), N * I);
  std::vector<float> d_xn(static_cast<size_t>(N * D), 0.0f);
  linear_backward(a.xn2.data(), N, D, w.gate_proj.f32, I, d_gate.data(), d_xn.data(), gr.gate_proj,
                  gr.gate_bias);
  linear_backward(a.xn2.data(), N, D, w.up_proj.f32, I, d_up.data(), d_xn.data(), gr.up_proj,
                  gr.up_bias);
  rmsnorm_backward(dx.data(), gr.post_norm, d_xn.data(), a.h.data(), w.post_norm, N, D, eps);
  // dx is now the gradient of h.

  // Attention block: h = x_in + o_proj(att).
  std::vector<float> d_att(static_cast<size_t>(N * H * d), 0.0f);
  linear_backward(a.att.data(), N, H * d, w.o_proj.f32, D, dx.data(), d_att.data(), gr.o_proj,
                  gr.o_bias);
  std::vector<float> dq(static_cast<size_t>(N * QH * d), 0.0f);
  std::vector<float> dkc(static_cast<size_t>(B * KH * T * d), 0.0f), dvc(static_cast<size_t>(B * KV * T * d), 0.0f);
  AttentionBackwardArgs args;
  args.q = a.q.data();
  args.q_stride = QH * d;
  args.k = a.kc.data();
  args.v = a.vc.data();
  args.segments = tr.segments.data();
  args.scale = 1.0f / std::sqrt(static_cast<float>(d));
  args.dq = dq.data();
  args.dq_stride = QH * d;
  args.dk = dkc.data();
  args.dv = dvc.data();
  const AttentionBackwardShape shape{B, T, T, T, KH, KV, d, c.sliding_window};

  if (!c.is_differential()) {
    AttentionMaps maps;
    for (int32_t h = 0; h < H; ++h) {
      maps.q.push_back(h);
      maps.k.push_back(static_cast<int32_t>(h / (H / KV)));
      maps.v.push_back(static_cast<int32_t>(h / (H / KV)));
    }
    args.m = a.m1.data();
    args.l = a.l1.data();
    args.out = a.att.data();
    args.d_out = d_att.data();
    attention_maps_backward(shape, maps, args);
  } else {
    // out_i = s * norm(z_i), z_i = A1_i - lambda_eff A2_i (spec §3, §4).
    const DiffHeadMap hm = diff_head_map(c);
    const int64_t Hd = hm.n_diff_heads(), wv = c.diff_value_width();
    const AttentionLayoutModule& layout = layout_module(c);
    const float mix = layout.warmup_mix() ? diff_attn_mix_ : 1.0f;
    const float lambda_eff = mix * a.lambda;
    const AttentionLayoutModule::Output output = layout.output(c, l);
    const float out_scale = output.scale;
    const bool norm = output.norm;
    std::vector<float> z(static_cast<size_t>(N * Hd * wv)), dz(z.size(), 0.0f);
    for (size_t i = 0; i < z.size(); ++i) z[i] = a.a1[i] - lambda_eff * a.a2[i];
    if (norm) {
      std::vector<float> dy(d_att.size());
      for (size_t i = 0; i < dy.size(); ++i) dy[i] = d_att[i] * out_scale;
      rmsnorm_backward(dz.data(), gr.subln, dy.data(), z.data(), w.subln, N * Hd, wv, eps);  // subln, if any
    } else {
      for (size_t i = 0; i < dz.size(); ++i) dz[i] = d_att[i] * out_scale;
    }
    // Both maps as one list: maps [0, Hd) are the first softmaxes, [Hd, 2Hd) the second.
    AttentionMaps maps;
    maps.value_heads = hm.value_heads;
    maps.q = hm.q1;
    maps.q.insert(maps.q.end(), hm.q2.begin(), hm.q2.end());
    maps.k = hm.k1;
    maps.k.insert(maps.k.end(), hm.k2.begin(), hm.k2.end());
    maps.v = hm.v;
    maps.v.insert(maps.v.end(), hm.v.begin(), hm.v.end());
    std::vector<float> outs(static_cast<size_t>(N * 2 * Hd * wv)), d_outs(outs.size());
    double d_lambda_eff = 0.0;
    for (int64_t r = 0; r < N; ++r)
      for (int64_t i = 0; i < Hd; ++i) {
        const float* a1 = &a.a1[(r * Hd + i) * wv];
        const float* a2 = &a.a2[(r * Hd + i) * wv];
        const float* gz = &dz[(r * Hd + i) * wv];
        float* o1 = &outs[(r * 2 * Hd + i) * wv];
        float* o2 = &outs[(r * 2 * Hd + Hd + i) * wv];
        float* g1 = &d_outs[(r * 2 * Hd + i) * wv];
        float* g2 = &d_outs[(r * 2 * Hd + Hd + i) * wv];
        for (int64_t x = 0; x < wv; ++x) {
          o1[x] = a1[x];
          o2[x] = a2[x];
          g1[x] = gz[x];
          g2[x] = -lambda_eff * gz[x];
          d_lambda_eff -= static_cast<double>(gz[x]) * a2[x];
        }
      }
    std::vector<float> m(static_cast<size_t>(B * 2 * Hd * T)), lsum(m.size());
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(&a.m1[b * Hd * T], Hd * T, &m[b * 2 * Hd * T]);
      std::copy_n(&a.m2[b * Hd * T], Hd * T, &m[(b * 2 + 1) * Hd * T]);
      std::copy_n(&a.l1[b * Hd * T], Hd * T, &lsum[b * 2 * Hd * T]);
      std::copy_n(&a.l2[b * Hd * T], Hd * T, &lsum[(b * 2 + 1) * Hd * T]);
    }
    args.m = m.data();
    args.l = lsum.data();
    args.out = outs.data();
    args.d_out = d_outs.data();
    attention_maps_backward(shape, maps, args);
    // lambda = exp(q1 · k1) - exp(q2 · k2) + lambda_init (spec §2); lambda_init is a constant.
    const float d_lambda = static_cast<float>(d_lambda_eff) * mix;
    float s1 = 0.0f, s2 = 0.0f;
    for (int64_t i = 0; i < d; ++i) {
      s1 += w.lambda_q1[i] * w.lambda_k1[i];
      s2 += w.lambda_q2[i] * w.lambda_k2[i];
    }
    const float e1 = std::exp(s1) * d_lambda, e2 = -std::exp(s2) * d_lambda;
    float *gq1 = gr.lambda_q1, *gk1 = gr.lambda_k1;
    float *gq2 = gr.lambda_q2, *gk2 = gr.lambda_k2;
    for (int64_t i = 0; i < d; ++i) {
      gq1[i] += e1 * w.lambda_k1[i];
      gk1[i] += e1 * w.lambda_q1[i];
      gq2[i] += e2 * w.lambda_k2[i];
      gk2[i] += e2 * w.lambda_q2[i];
    }
  }

  // Back through RoPE, the q/k norms and the projections.
  std::vector<float> dk(static_cast<size_t>(N * KH * d), 0.0f), dv(static_cast<size_t>(N * KV * d), 0.0f);
  gather_heads_add(dkc.data(), B, T, KH, d, dk.data());
  gather_heads_add(dvc.data(), B, T, KV, d, dv.data());
  rope_backward(dq.data(), N, QH, d, QH * d, tr.cos.data(), tr.sin.data());
  rope_backward(dk.data(), N, KH, d, KH * d, tr.cos.data(), tr.sin.data());
  if (w.q_norm) {
    std::vector<float> dq_lin(dq.size(), 0.0f), dk_lin(dk.size(), 0.0f);
    rmsnorm_backward(dq_lin.data(), gr.q_norm, dq.data(), a.q_lin.data(), w.q_norm, N * QH, d, eps);
    rmsnorm_backward(dk_lin.data(), gr.k_norm, dk.data(), a.k_lin.data(), w.k_norm, N * KH, d, eps);
    dq.swap(dq_lin);
    dk.swap(dk_lin);
  }
  std::fill(d_xn.begin(), d_xn.end(), 0.0f);
  linear_backward(a.xn1.data(), N, D, w.q_proj.f32, QH * d, dq.data(), d_xn.data(), gr.q_proj,
                  gr.q_bias);
  linear_backward(a.xn1.data(), N, D, w.k_proj.f32, KH * d, dk.data(), d_xn.data(), gr.k_proj,
                  gr.k_bias);
  linear_backward(a.xn1.data(), N, D, w.v_proj.f32, KV * d, dv.data(), d_xn.data(), gr.v_proj,
                  gr.v_bias);
  rmsnorm_backward(dx.data(), gr.input_norm, d_xn.data(), a.x_in.data(), w.input_norm, N, D, eps);
  // dx is now the gradient of x_in.
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
    loss += cross_entropy_forward_backward(logits.data(), &targets[r0], rows, V, grad_scale, grad);
    if (grad) linear_backward(hidden + r0 * D, rows, D, lm_head_.f32, V, logits.data(), d_hidden + r0 * D, g_head, nullptr);
  }
  return loss;
}

double Model::loss(const TokenBatch& batch, std::span<const int32_t> targets) const {
  if (static_cast<int64_t>(targets.size()) != batch.batch * batch.seq_len)
    fail<ShapeError>("loss: {} targets for {} positions", targets.size(), batch.batch * batch.seq_len);
  const Buffer hidden = forward_on_backend(batch, nullptr, LogitsMode::hidden);
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
                                std::span<float> grads, ForwardTrace& trace) const {
  if (matrices_in_bf16())
    throw std::logic_error("loss_and_backward: the matrices are kept in bf16 (inference only), train in float32");
  if (on_device()) throw std::logic_error("loss_and_backward: the model is on " + backend_->name() + " (inference only)");
  const ModelConfig& c = config_;
  const int64_t N = batch.batch * batch.seq_len, D = c.hidden_size;
  if (static_cast<int64_t>(targets.size()) != N)
    fail<ShapeError>("loss_and_backward: {} targets for {} positions", targets.size(), N);
  if (grads.size() != weights_.size()) fail<ShapeError>("loss_and_backward: gradient buffer of the wrong size");
  std::vector<float> hidden;
  forward(batch, nullptr, LogitsMode::hidden, hidden, &trace);
  float* g_head = grads.data() + head_index_.lm_head->offset;
  std::vector<float> d_xnf(static_cast<size_t>(N * D), 0.0f);
  const double loss = head_loss(trace.xnf.data(), targets, grad_scale, d_xnf.data(), g_head);
  std::vector<float> dx(static_cast<size_t>(N * D), 0.0f);
  rmsnorm_backward(dx.data(), grads.data() + head_index_.final_norm->offset, d_xnf.data(), trace.x_final.data(),
                   final_norm_, N, D, static_cast<float>(c.rms_norm_eps));
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) layer_backward(l, trace, dx, grads.data());
  float* g_embed = grads.data() + head_index_.embed->offset;
  for (int64_t i = 0; i < N; ++i) {
    float* row = g_embed + static_cast<int64_t>(batch.ids[i]) * D;
    for (int64_t x = 0; x < D; ++x) row[x] += dx[i * D + x];
  }
  return loss;
}

}  // namespace difftx
