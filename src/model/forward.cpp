// The forward pass of spec §1, top to bottom:
//   x = embed_tokens[ids]
//   per layer: h = x + o_proj(attention(rmsnorm_in(x)));  x = h + down(silu(gate(n)) * up(n)), n = rmsnorm_post(h)
//   logits = lm_head(rmsnorm_final(x))
// where attention is standard softmax attention or, for the differential layouts, the fused
// differential attention of spec §2-§4.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/diff_attention.h"
#include "kernels/cpu/gemv.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/diff_layout.h"
#include "model/rope_freqs.h"
#include "model/trace.h"

namespace difftx {

namespace {

void check_batch(const TokenBatch& b, const ModelConfig& c) {
  const int64_t n = b.batch * b.seq_len;
  if (b.batch <= 0 || b.seq_len <= 0) fail<ShapeError>("forward: empty batch ({} x {})", b.batch, b.seq_len);
  if (static_cast<int64_t>(b.ids.size()) != n)
    fail<ShapeError>("forward: {} ids for a batch of {} x {}", b.ids.size(), b.batch, b.seq_len);
  if (!b.position_ids.empty() && static_cast<int64_t>(b.position_ids.size()) != n)
    fail<ShapeError>("forward: {} position ids for a batch of {} x {}", b.position_ids.size(), b.batch, b.seq_len);
  if (!b.attention_mask.empty() && static_cast<int64_t>(b.attention_mask.size()) != n)
    fail<ShapeError>("forward: attention mask of {} entries for a batch of {} x {}", b.attention_mask.size(), b.batch,
                     b.seq_len);
  if (!b.segment_ids.empty() && static_cast<int64_t>(b.segment_ids.size()) != n)
    fail<ShapeError>("forward: {} segment ids for a batch of {} x {}", b.segment_ids.size(), b.batch, b.seq_len);
  for (int32_t s : b.segment_ids)
    if (s < 0) fail<ShapeError>("forward: segment id {} is negative", s);
  for (int64_t i = 0; i < n; ++i)
    if (b.ids[i] < 0 || b.ids[i] >= c.vocab_size)
      fail<ShapeError>("forward: token id {} at index {} is outside the vocabulary [0, {})", b.ids[i], i, c.vocab_size);
  for (int64_t p : b.position_ids)
    if (p < 0 || p > (int64_t{1} << 40)) fail<ShapeError>("forward: position id {} is out of range", p);
}

// Copies rows of a [B*T, KV*d] projection into the cache layout [B, KV, capacity, d] at `past`.
void scatter_kv(const float* src, int64_t B, int64_t T, int64_t KV, int64_t d, float* dst, int64_t capacity,
                int64_t past) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < KV; ++h)
        std::memcpy(dst + ((b * KV + h) * capacity + past + t) * d, src + ((b * T + t) * KV + h) * d,
                    sizeof(float) * d);
}

}  // namespace

float Model::layer_lambda(int64_t l) const {
  const LayerWeights& w = layers_[l];
  const float lambda_init = config_.layout == AttentionLayout::llama_differential
                                ? *w.lambda_init
                                : static_cast<float>(lambda_init_for_layer(l));
  return diff_lambda(w.lambda_q1, w.lambda_k1, w.lambda_q2, w.lambda_k2, config_.head_dim, lambda_init);
}

DiffAttentionParams Model::diff_params(int64_t l) const {
  DiffAttentionParams p;
  p.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  p.norm_eps = static_cast<float>(config_.rms_norm_eps);
  if (config_.layout == AttentionLayout::llama_differential) {  // spec §3
    p.lambda = diff_attn_mix_ * layer_lambda(l);
    p.norm = config_.sublayer_norm;
    p.norm_weight = layers_[l].subln;
  } else {  // diffllama, spec §4
    p.lambda = layer_lambda(l);
    p.norm = true;
    p.out_scale = 1.0f - static_cast<float>(lambda_init_for_layer(l));
  }
  return p;
}

void Model::forward(const TokenBatch& batch, KVCache* cache, LogitsMode mode, std::vector<float>& logits,
                    ForwardTrace* trace) const {
  const ModelConfig& c = config_;
  check_batch(batch, c);
  if (trace && cache) throw std::logic_error("forward: a training trace is taken without a KV cache");
  const int64_t B = batch.batch, T = batch.seq_len, N = B * T;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads, d = c.head_dim;
  const int64_t QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d;  // heads in q and k (doubled in double mode)
  const int64_t I = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);

  // Where keys and values live: the caller's cache, or a scratch one for this call.
  const int64_t past = cache ? cache->length() : 0;
  if (cache) {
    if (cache->batch() != B) fail<ShapeError>("forward: batch of {} rows but the KV cache holds {}", B, cache->batch());
    if (past + T > cache->capacity())
      fail<ShapeError>("forward: KV cache full ({} cached + {} new > capacity {})", past, T, cache->capacity());
  }
  const int64_t capacity = cache ? cache->capacity() : T;
  std::vector<float> scratch_k, scratch_v;
  std::vector<int32_t> scratch_segments;
  if (!cache) {
    if (!trace) {
      scratch_k.resize(static_cast<size_t>(B * KH * T * d));
      scratch_v.resize(static_cast<size_t>(B * KV * T * d));
    }
    scratch_segments.resize(static_cast<size_t>(B * T));
  }
  int32_t* segments = cache ? cache->segments() : scratch_segments.data();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = b * T + t;
      int32_t seg = batch.segment_ids.empty() ? 1 : batch.segment_ids[i];
      if (!batch.attention_mask.empty() && batch.attention_mask[i] == 0) seg = 0;
      segments[b * capacity + past + t] = seg;
    }

  // Positions and RoPE tables.
  std::vector<int64_t> positions(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) positions[i] = batch.position_ids.empty() ? past + i % T : batch.position_ids[i];
  int64_t max_position = *std::max_element(positions.begin(), positions.end());
  if (cache) max_position = std::max(max_position, cache->max_position());
  const RopeFreqs freqs = rope_freqs(c, max_position + 1);
  std::vector<float> cos(static_cast<size_t>(N * d / 2)), sin(cos.size());
  rope_cos_sin(freqs, positions.data(), N, cos.data(), sin.data());

  // Activations: one set reused by every layer, or per layer in the trace.
  std::vector<float> x(static_cast<size_t>(N * D)), xn(x.size());
  std::vector<float> q(static_cast<size_t>(N * QH * d)), att(static_cast<size_t>(N * H * d));
  std::vector<float> k(static_cast<size_t>(N * KH * d)), v(static_cast<size_t>(N * KV * d));
  std::vector<float> gate(static_cast<size_t>(N * I)), up(gate.size());
  if (trace) {
    trace->batch = B;
    trace->seq_len = T;
    trace->ids = batch.ids;
    trace->segments = scratch_segments;
    trace->cos = cos;
    trace->sin = sin;
    trace->layers.resize(static_cast<size_t>(c.num_hidden_layers));
  }

  for (int64_t i = 0; i < N; ++i) {
    const int64_t row = static_cast<int64_t>(batch.ids[i]) * D;
    if (embed_.bf16 != nullptr) bf16_rows_to_f32(embed_.bf16 + row, 1, D, &x[i * D]);
    else std::memcpy(&x[i * D], embed_.f32 + row, sizeof(float) * D);
  }

  AttentionShape shape;
  shape.batch = B;
  shape.q_len = T;
  shape.kv_len = past + T;
  shape.kv_capacity = capacity;
  shape.n_heads = H;
  shape.n_kv_heads = KV;
  shape.head_dim = d;
  shape.window = c.sliding_window;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  DiffAttentionShape diff_shape{B, T, past + T, capacity, QH, KH, KV, d, c.sliding_window};
  const DiffHeadMap diff_map = c.is_differential() ? diff_head_map(c) : DiffHeadMap{};
  const int64_t Hd = diff_map.n_diff_heads(), w_diff = c.is_differential() ? c.diff_value_width() : 0;

  auto keep = [](std::vector<float>& dst, const std::vector<float>& src) { dst.assign(src.begin(), src.end()); };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& w = layers_[l];
    LayerTrace* tr = trace ? &trace->layers[l] : nullptr;
    // Attention block.
    if (tr) keep(tr->x_in, x);
    rmsnorm_forward(xn.data(), x.data(), w.input_norm, N, D, eps);
    if (tr) keep(tr->xn1, xn);
    const LinearOut qkv[] = {{w.q_proj, w.q_bias, QH * d, q.data()},
                             {w.k_proj, w.k_bias, KH * d, k.data()},
                             {w.v_proj, w.v_bias, KV * d, v.data()}};
    linear_forward_shared_input(xn.data(), N, D, qkv);
    if (tr && w.q_norm) {
      keep(tr->q_lin, q);
      keep(tr->k_lin, k);
    }
    if (w.q_norm) rmsnorm_forward(q.data(), q.data(), w.q_norm, N * QH, d, eps);
    if (w.k_norm) rmsnorm_forward(k.data(), k.data(), w.k_norm, N * KH, d, eps);
    rope_apply(q.data(), N, QH, d, QH * d, cos.data(), sin.data());
    rope_apply(k.data(), N, KH, d, KH * d, cos.data(), sin.data());
    float* kc = cache ? cache->keys(l) : scratch_k.data();
    float* vc = cache ? cache->values(l) : scratch_v.data();
    if (tr) {
      keep(tr->q, q);
      tr->kc.resize(static_cast<size_t>(B * KH * T * d));
      tr->vc.resize(static_cast<size_t>(B * KV * T * d));
      kc = tr->kc.data();
      vc = tr->vc.data();
    }
    scatter_kv(k.data(), B, T, KH, d, kc, capacity, past);
    scatter_kv(v.data(), B, T, KV, d, vc, capacity, past);
    if (c.is_differential()) {
      const DiffAttentionParams params = diff_params(l);
      DiffAttentionStats stats;
      if (tr) {
        for (auto* st : {&tr->m1, &tr->l1, &tr->m2, &tr->l2}) st->resize(static_cast<size_t>(B * Hd * T));
        tr->a1.resize(static_cast<size_t>(N * Hd * w_diff));
        tr->a2.resize(tr->a1.size());
        stats = {tr->m1.data(), tr->l1.data(), tr->m2.data(), tr->l2.data(), tr->a1.data(), tr->a2.data()};
        tr->lambda = layer_lambda(l);
      }
      diff_attention_forward(diff_shape, diff_map, params, q.data(), QH * d, kc, vc, segments, att.data(), H * d,
                             tr ? &stats : nullptr);
    } else {
      if (tr) {
        tr->m1.resize(static_cast<size_t>(B * H * T));
        tr->l1.resize(tr->m1.size());
      }
      attention_forward(shape, q.data(), H * d, kc, vc, segments, scale, att.data(), H * d, tr ? tr->m1.data() : nullptr,
                        tr ? tr->l1.data() : nullptr);
    }
    if (tr) keep(tr->att, att);
    linear_forward(att.data(), N, H * d, w.o_proj, w.o_bias, D, x.data(), /*accumulate=*/true);
    // MLP block.
    if (tr) keep(tr->h, x);
    rmsnorm_forward(xn.data(), x.data(), w.post_norm, N, D, eps);
    if (tr) keep(tr->xn2, xn);
    const LinearOut gate_up[] = {{w.gate_proj, w.gate_bias, I, gate.data()}, {w.up_proj, w.up_bias, I, up.data()}};
    linear_forward_shared_input(xn.data(), N, D, gate_up);
    if (tr) {
      keep(tr->gate, gate);
      keep(tr->up, up);
    }
    swiglu_forward(gate.data(), gate.data(), up.data(), N * I);
    linear_forward(gate.data(), N, I, w.down_proj, w.down_bias, D, x.data(), /*accumulate=*/true);
  }
  if (cache) cache->advance(T, max_position);

  // Final norm and lm_head, for every position or only the last of each row.
  int64_t rows = N;
  if (mode == LogitsMode::last) {
    rows = B;
    for (int64_t b = 0; b < B; ++b) std::memcpy(&xn[b * D], &x[(b * T + T - 1) * D], sizeof(float) * D);
    rmsnorm_forward(xn.data(), xn.data(), final_norm_, rows, D, eps);
  } else {
    rmsnorm_forward(xn.data(), x.data(), final_norm_, rows, D, eps);
  }
  if (trace) {
    trace->x_final = x;
    trace->xnf = xn;
  }
  if (mode == LogitsMode::hidden) {
    logits = std::move(xn);
    return;
  }
  logits.resize(static_cast<size_t>(rows * c.vocab_size));
  lm_head_forward(xn.data(), rows, logits.data());
}

void Model::lm_head_forward(const float* hidden, int64_t rows, float* logits) const {
  linear_forward(hidden, rows, config_.hidden_size, lm_head_, nullptr, config_.vocab_size, logits);
}

}  // namespace difftx
