// The forward pass of spec §1, top to bottom:
//   x = embed_tokens[ids]
//   per layer: h = x + o_proj(attention(rmsnorm_in(x)));  x = h + down(silu(gate(n)) * up(n)), n = rmsnorm_post(h)
//   logits = lm_head(rmsnorm_final(x))
// where attention is standard softmax attention or, for the differential layouts, the fused
// differential attention of spec §2-§4 and §7, or diff-v2's ordinary attention over 2H query heads
// combined in pairs with a per-token lambda (spec §8). Every operation runs on the model's backend
// (kernels/backend.h); the host prepares token ids, positions, RoPE tables and segment ids.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/error.h"
#include "model/attention/layout.h"
#include "model/diff_layout.h"
#include "model/kv_cache.h"
#include "model/layer_pass.h"
#include "model/model.h"
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

// A host vector copied to a new buffer of the backend.
template <class T>
Buffer to_backend(Backend& be, const std::vector<T>& host) {
  Buffer b = be.alloc(host.size() * sizeof(T));
  be.upload(b.as<void>(), host.data(), b.bytes());
  return b;
}

// Copies `floats` floats of a backend buffer into a trace vector (host).
void keep(Backend& be, std::vector<float>& dst, const float* src, int64_t floats) {
  dst.resize(static_cast<size_t>(floats));
  be.download(dst.data(), src, dst.size() * sizeof(float));
}

// Segment ids of the batch's positions [B, T] as the attention kernels take them: the batch's
// segment ids (1 when it has none), 0 where the attention mask is 0.
std::vector<int32_t> segment_ids(const TokenBatch& batch) {
  const int64_t N = batch.batch * batch.seq_len;
  std::vector<int32_t> segments(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    int32_t seg = batch.segment_ids.empty() ? 1 : batch.segment_ids[i];
    if (!batch.attention_mask.empty() && batch.attention_mask[i] == 0) seg = 0;
    segments[i] = seg;
  }
  return segments;
}

// The inputs of a call over the batch's positions (past + t unless the batch gives position ids),
// with the largest position the cache will have seen.
PassInputs upload_inputs(Backend& be, const ModelConfig& c, const TokenBatch& batch, int64_t past,
                         const KVCache* cache) {
  const int64_t T = batch.seq_len, N = batch.batch * T, d = c.head_dim;
  std::vector<int64_t> positions(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) positions[i] = batch.position_ids.empty() ? past + i % T : batch.position_ids[i];
  int64_t max_position = *std::max_element(positions.begin(), positions.end());
  if (cache) max_position = std::max(max_position, cache->max_position());
  const RopeFreqs freqs = rope_freqs(c, max_position + 1);
  std::vector<float> cos(static_cast<size_t>(N * d / 2)), sin(cos.size());
  rope_cos_sin(freqs, positions.data(), N, cos.data(), sin.data());
  PassInputs in = pack_pass_inputs(be, std::move(cos), std::move(sin), batch.ids.data(), N);
  in.max_position = max_position;
  return in;
}

}  // namespace

PassInputs pack_pass_inputs(Backend& be, std::vector<float> cos, std::vector<float> sin, const int32_t* ids,
                            int64_t N) {
  PassInputs in;
  const int64_t half = static_cast<int64_t>(cos.size());
  const int64_t table = (half + 15) / 16 * 16, id_words = (N + 15) / 16 * 16;
  std::vector<float> inputs(static_cast<size_t>(2 * table + id_words));
  std::copy(cos.begin(), cos.end(), inputs.begin());
  std::copy(sin.begin(), sin.end(), inputs.begin() + table);
  std::memcpy(inputs.data() + 2 * table, ids, sizeof(int32_t) * N);
  in.buffer = to_backend(be, inputs);
  in.cos = in.buffer.as<const float>();
  in.sin = in.cos + table;
  in.ids = reinterpret_cast<const int32_t*>(in.cos + 2 * table);
  in.cos_host = std::move(cos);
  in.sin_host = std::move(sin);
  return in;
}

PassBuffers pass_buffers(Backend& be, const ModelConfig& c, int64_t N, int64_t lora_rank) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads, d = c.head_dim;
  const int64_t QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d, I = c.intermediate_size;
  PassBuffers b{be.alloc_array<float>(N * D), be.alloc_array<float>(N * D), be.alloc_array<float>(N * QH * d),
                be.alloc_array<float>(N * KH * d), be.alloc_array<float>(N * KV * d), be.alloc_array<float>(N * H * d),
                {}, {}, be.alloc_array<float>(N * I), be.alloc_array<float>(N * I), {}, {}};
  if (layout_module(c).per_token_lambda()) {
    b.att_pairs = be.alloc_array<float>(N * QH * d);
    b.lambda_logits = be.alloc_array<float>(N * H);
  }
  if (lora_rank > 0) {
    b.lora_t = be.alloc_array<float>(N * lora_rank);
    b.lora_act = be.alloc_array<float>(N * I);
  }
  return b;
}

LayerPass layer_pass(Backend& be, const PassBuffers& b, int64_t B, int64_t T, int64_t past, int64_t capacity,
                     const float* cos, const float* sin, const int32_t* segments, KVCache* cache, float* scratch_k,
                     float* scratch_v, ForwardTrace* trace, float diff_attn_mix) {
  return LayerPass{be, B, T, B * T, past, capacity, b.x.as<float>(), b.xn.as<float>(), b.q.as<float>(),
                   b.k.as<float>(), b.v.as<float>(), b.att.as<float>(), b.att_pairs.as<float>(),
                   b.lambda_logits.as<float>(), b.gate.as<float>(), b.up.as<float>(), b.lora_t.as<float>(),
                   b.lora_act.as<float>(), cos, sin, segments, cache,
                   scratch_k, scratch_v, trace, diff_attn_mix};
}


// diff-v2 (spec §8): ordinary attention over the QH = 2H query heads (query head j on kv head
// j / (QH / KV)), then out_i = A_2i V - mix * sigmoid(z_i) A_2i+1 V with z = xn · lambda_proj^T,
// which rmsnorm_linear_forward computed beside q, k and v.
void Model::paired_attention_forward(const LayerPass& s, const float* kc, const float* vc, LayerTrace* tr) const {
  const ModelConfig& c = config_;
  Backend& be = s.be;
  const int64_t B = s.B, T = s.T, N = s.N, H = c.num_attention_heads, KV = c.num_key_value_heads, d = c.head_dim;
  const int64_t QH = c.q_proj_rows() / d;
  const AttentionShape shape{B, T, s.past + T, s.capacity, QH, KV, KV, d, c.sliding_window};
  if (tr) {
    tr->m.resize(static_cast<size_t>(B * QH * T));
    tr->l.resize(tr->m.size());
  }
  be.attention_forward(shape, s.q, QH * d, kc, vc, s.segments, 1.0f / std::sqrt(static_cast<float>(d)), s.att_pairs,
                       QH * d, tr ? tr->m.data() : nullptr, tr ? tr->l.data() : nullptr);
  if (tr) {
    keep(be, tr->a, s.att_pairs, N * QH * d);
    keep(be, tr->lambda_logits, s.lambda_logits, N * H);
  }
  be.lambda_combine_forward(s.att_pairs, s.lambda_logits, s.diff_attn_mix, N, H, d, s.att);
}

float Model::layer_lambda(int64_t l) const {
  if (!placed_lambda_.empty()) return placed_lambda_[static_cast<size_t>(l)];
  const LayerWeights& w = layers_[l];
  const auto lambda_init = static_cast<float>(layout_module(config_).lambda_init(w.lambda_init, l));
  return diff_lambda(w.lambda_q1, w.lambda_k1, w.lambda_q2, w.lambda_k2, config_.head_dim, lambda_init);
}

DiffAttentionParams Model::diff_params(int64_t l, float diff_attn_mix) const {
  DiffAttentionParams p;
  p.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  p.norm_eps = static_cast<float>(config_.rms_norm_eps);
  const AttentionLayoutModule& layout = layout_module(config_);
  const float lambda = layer_lambda(l);
  p.lambda = layout.warmup_mix() ? diff_attn_mix * lambda : lambda;
  const AttentionLayoutModule::Output out = layout.output(config_, l);
  p.norm = out.norm;
  p.norm_weight = layers_[l].subln;  // nullptr: RMSNorm without weight (or no norm)
  p.out_scale = out.scale;
  return p;
}

// Attention of layer l on the pass's q, k, v (after their norms): RoPE, the keys and values
// written to the cache (or scratch), then the layout's attention into s.att.
void Model::attend(int64_t l, const LayerPass& s, LayerTrace* tr) const {
  const ModelConfig& c = config_;
  Backend& be = s.be;
  const int64_t B = s.B, T = s.T, N = s.N;
  const int64_t H = c.num_attention_heads, KV = c.num_key_value_heads, d = c.head_dim;
  const int64_t QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d;
  const bool per_token_lambda = s.lambda_logits != nullptr;
  float* kc = s.cache ? s.cache->keys(l) : s.scratch_k;
  float* vc = s.cache ? s.cache->values(l) : s.scratch_v;
  be.rope_cache_write(s.q, QH, QH * d, s.k, KH, KH * d, s.v, KV, B, T, d, s.cos, s.sin, kc, vc, s.capacity, s.past);
  if (tr) {
    keep(be, tr->q, s.q, N * QH * d);
    keep(be, tr->kc, kc, B * KH * T * d);
    keep(be, tr->vc, vc, B * KV * T * d);
  }
  if (per_token_lambda) {
    paired_attention_forward(s, kc, vc, tr);
  } else if (c.is_differential()) {
    const DiffHeadMap map = diff_head_map(c);
    const int64_t Hd = map.n_diff_heads(), w_diff = c.diff_value_width();
    const AttentionShape shape{B, T, s.past + T, s.capacity, QH, KH, KV, d, c.sliding_window};
    DiffAttentionStats stats;
    if (tr) {  // the trace needs the CPU backend (checked by the caller): host pointers are valid
      tr->m.resize(static_cast<size_t>(B * 2 * Hd * T));
      tr->l.resize(tr->m.size());
      tr->a.resize(static_cast<size_t>(N * 2 * Hd * w_diff));
      stats = {tr->m.data(), tr->l.data(), tr->a.data()};
      tr->lambda = layer_lambda(l);
    }
    be.diff_attention_forward(shape, map, diff_params(l, s.diff_attn_mix), s.q, QH * d, kc, vc, s.segments, s.att, H * d,
                              tr ? &stats : nullptr);
  } else {
    const AttentionShape shape{B, T, s.past + T, s.capacity, H, KV, KV, d, c.sliding_window};
    if (tr) {
      tr->m.resize(static_cast<size_t>(B * H * T));
      tr->l.resize(tr->m.size());
    }
    be.attention_forward(shape, s.q, H * d, kc, vc, s.segments, 1.0f / std::sqrt(static_cast<float>(d)), s.att, H * d,
                         tr ? tr->m.data() : nullptr, tr ? tr->l.data() : nullptr);
  }
}

void Model::layer_forward(int64_t l, LayerPass& s) const {
  const ModelConfig& c = config_;
  Backend& be = s.be;
  const int64_t N = s.N;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads, d = c.head_dim;
  const int64_t QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d, I = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const LayerWeights& w = layers_[l];
  const bool kept = s.kept_layers && std::count(s.kept_layers->begin(), s.kept_layers->end(), l) > 0;
  LayerTrace* tr = s.work && !kept ? s.work : s.trace ? &s.trace->layers[l] : nullptr;

  // Attention block.
  if (tr) keep(be, tr->x_in, s.x, N * D);
  if (tr == s.work && s.trace) keep(be, s.trace->layers[l].x_in, s.x, N * D);
  const LinearOut qkv[] = {{w.q_proj, w.q_bias, QH * d, s.q}, {w.k_proj, w.k_bias, KH * d, s.k},
                           {w.v_proj, w.v_bias, KV * d, s.v}, {w.lambda_proj, nullptr, H, s.lambda_logits}};
  const bool per_token_lambda = s.lambda_logits != nullptr;
  be.rmsnorm_linear_forward(s.x, N, D, w.input_norm, eps, s.xn, std::span(qkv, per_token_lambda ? 4 : 3));
  const auto* lora = lora_layers_.empty() ? nullptr : &lora_layers_[static_cast<size_t>(l)];
  if (lora) {
    lora_forward(s, l, MatrixRole::q_proj, s.xn, D, s.q, QH * d);
    lora_forward(s, l, MatrixRole::k_proj, s.xn, D, s.k, KH * d);
    lora_forward(s, l, MatrixRole::v_proj, s.xn, D, s.v, KV * d);
    if (per_token_lambda) lora_forward(s, l, MatrixRole::lambda_proj, s.xn, D, s.lambda_logits, H);
  }
  if (tr) keep(be, tr->xn1, s.xn, N * D);
  if (tr && w.q_norm) {
    keep(be, tr->q_lin, s.q, N * QH * d);
    keep(be, tr->k_lin, s.k, N * KH * d);
  }
  if (w.q_norm) be.rmsnorm_forward(s.q, s.q, w.q_norm, N * QH, d, eps);
  if (w.k_norm) be.rmsnorm_forward(s.k, s.k, w.k_norm, N * KH, d, eps);
  if (s.row_caches.empty()) {
    attend(l, s, tr);
  } else {  // one decoded token per row, each row with its own cache: attention row by row
    for (int64_t i = 0; i < N; ++i) {
      KVCache* cache = s.row_caches[static_cast<size_t>(i)];
      if (cache == nullptr) {  // a padding row: its attention output is zero
        be.zero(s.att + i * H * d, sizeof(float) * H * d);
        continue;
      }
      LayerPass row = s;
      row.B = row.T = row.N = 1;
      row.past = cache->length();
      row.capacity = cache->capacity();
      row.cache = cache;
      row.segments = cache->uniform_segments() ? nullptr : cache->segments();
      row.row_caches = {};
      row.q += i * QH * d;
      row.k += i * KH * d;
      row.v += i * KV * d;
      row.att += i * H * d;
      if (row.att_pairs) row.att_pairs += i * QH * d;
      if (row.lambda_logits) row.lambda_logits += i * H;
      row.cos += i * (d / 2);
      row.sin += i * (d / 2);
      attend(l, row, nullptr);
    }
  }
  if (tr) keep(be, tr->att, s.att, N * H * d);
  be.linear_forward(s.att, N, H * d, w.o_proj, w.o_bias, D, s.x, /*accumulate=*/true);
  if (lora) lora_forward(s, l, MatrixRole::o_proj, s.att, H * d, s.x, D);

  // MLP block.
  if (tr) keep(be, tr->h, s.x, N * D);
  const LinearOut gate_up[] = {{w.gate_proj, w.gate_bias, I, s.gate}, {w.up_proj, w.up_bias, I, s.up}};
  be.rmsnorm_linear_forward(s.x, N, D, w.post_norm, eps, s.xn, gate_up);
  if (lora) {
    lora_forward(s, l, MatrixRole::gate_proj, s.xn, D, s.gate, I);
    lora_forward(s, l, MatrixRole::up_proj, s.xn, D, s.up, I);
    if (lora->down_proj.r > 0) be.swiglu_forward(s.lora_act, s.gate, s.up, N * I);  // gate is overwritten below
  }
  if (tr) {
    keep(be, tr->xn2, s.xn, N * D);
    keep(be, tr->gate, s.gate, N * I);
    keep(be, tr->up, s.up, N * I);
  }
  be.swiglu_linear_forward(s.gate, s.up, N, I, w.down_proj, w.down_bias, D, s.x, /*accumulate=*/true);
  if (lora) lora_forward(s, l, MatrixRole::down_proj, s.lora_act, I, s.x, D);
}

Buffer Model::forward_on_backend(const TokenBatch& batch, KVCache* cache, LogitsMode mode, ForwardTrace* trace,
                                 const ForwardOptions& options) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  check_batch(batch, c);
  if (trace && cache) throw std::logic_error("forward: a training trace is taken without a KV cache");
  if (trace && !be.host_memory()) throw std::logic_error("forward: a training trace needs the CPU backend");
  if (cache && cache->backend() != backend_.get())
    throw std::logic_error("forward: the KV cache was made for another backend than the model's");
  const int64_t B = batch.batch, T = batch.seq_len, N = B * T;
  const int64_t D = c.hidden_size, KV = c.num_key_value_heads, d = c.head_dim, KH = c.k_proj_rows() / d;

  // Where keys and values live: the caller's cache, or scratch buffers for this call.
  const int64_t past = cache ? cache->length() : 0;
  if (cache) {
    if (cache->batch() != B) fail<ShapeError>("forward: batch of {} rows but the KV cache holds {}", B, cache->batch());
    if (past + T > cache->capacity())
      fail<ShapeError>("forward: KV cache full ({} cached + {} new > capacity {})", past, T, cache->capacity());
  }
  const int64_t capacity = cache ? cache->capacity() : T;
  const std::vector<int32_t> segments = segment_ids(batch);
  Buffer scratch_segments, scratch_k, scratch_v;
  int32_t* segment_cache = nullptr;
  bool uniform = std::all_of(segments.begin(), segments.end(), [](int32_t s) { return s == 1; });
  if (cache) {
    segment_cache = cache->segments();
    be.upload_rows(segment_cache + past, sizeof(int32_t) * capacity, segments.data(), sizeof(int32_t) * T,
                   sizeof(int32_t) * T, B);
    cache->note_segments(uniform);
    uniform = cache->uniform_segments();
  } else {
    scratch_segments = to_backend(be, segments);
    segment_cache = scratch_segments.as<int32_t>();
    scratch_k = be.alloc_array<float>(B * KH * T * d);
    scratch_v = be.alloc_array<float>(B * KV * T * d);
  }
  // One segment and no padding anywhere in view: the kernels take no mask (the same values; the
  // tensor-core kernel then masks only the tiles on the diagonal). Training keeps the array.
  const int32_t* attention_segments = uniform && !trace ? nullptr : segment_cache;

  PassInputs in = upload_inputs(be, c, batch, past, cache);
  if (trace) {
    trace->batch = B;
    trace->seq_len = T;
    trace->ids = batch.ids;
    trace->segments = segments;
    trace->cos = std::move(in.cos_host);
    trace->sin = std::move(in.sin_host);
    trace->layers.resize(static_cast<size_t>(c.num_hidden_layers));
    if (options.recompute_activations)  // what an earlier pass without recomputation kept
      for (LayerTrace& layer : trace->layers) {
        LayerTrace input_only;
        input_only.x_in.swap(layer.x_in);
        layer = std::move(input_only);
      }
  }

  PassBuffers buffers = pass_buffers(be, c, N, lora_rank_);
  LayerPass pass = layer_pass(be, buffers, B, T, past, capacity, in.cos, in.sin, attention_segments, cache,
                              scratch_k.as<float>(), scratch_v.as<float>(), trace, options.diff_attn_mix);
  if (trace && options.recompute_activations) {
    pass.work = &trace->work;
    pass.kept_layers = &options.kept_layers;
  }
  pass.lora_dropout_seed = options.lora_dropout_seed;
  be.embedding_forward(in.ids, N, embed_, D, pass.x);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) layer_forward(l, pass);
  if (cache) cache->advance(T, in.max_position);

  // Final norm and lm_head, for every position or only the last of each row.
  const float eps = static_cast<float>(c.rms_norm_eps);
  int64_t rows = N;
  if (mode == LogitsMode::last) {
    rows = B;
    be.gather_rows(pass.xn, pass.x, B, D, T, T - 1);
    be.rmsnorm_forward(pass.xn, pass.xn, final_norm_, rows, D, eps);
  } else {
    be.rmsnorm_forward(pass.xn, pass.x, final_norm_, rows, D, eps);
  }
  if (trace) {
    keep(be, trace->x_final, pass.x, N * D);
    keep(be, trace->xnf, pass.xn, N * D);
  }
  if (mode == LogitsMode::hidden) return std::move(buffers.xn);
  Buffer logits = be.alloc_array<float>(rows * c.vocab_size);
  lm_head_forward(pass.xn, rows, logits.as<float>());
  return logits;
}

void Model::forward(const TokenBatch& batch, KVCache* cache, LogitsMode mode, std::vector<float>& logits,
                    ForwardTrace* trace, const ForwardOptions& options) const {
  const Buffer out = forward_on_backend(batch, cache, mode, trace, options);
  const int64_t rows = mode == LogitsMode::last ? batch.batch : batch.batch * batch.seq_len;
  const int64_t width = mode == LogitsMode::hidden ? config_.hidden_size : config_.vocab_size;
  logits.resize(static_cast<size_t>(rows * width));
  backend_->download(logits.data(), out.as<const float>(), logits.size() * sizeof(float));
}

void Model::lm_head_forward(const float* hidden, int64_t rows, float* logits) const {
  backend_->linear_forward(hidden, rows, config_.hidden_size, lm_head_, nullptr, config_.vocab_size, logits, false);
}

double Model::next_token_nll(const float* hidden, int64_t rows, const int32_t* targets) const {
  const int64_t V = config_.vocab_size;
  for (int64_t r = 0; r < rows; ++r)
    if (targets[r] != kIgnoreIndex && (targets[r] < 0 || targets[r] >= V))
      fail<ShapeError>("loss: target id {} is outside the vocabulary [0, {})", targets[r], V);
  Buffer logits = backend_->alloc_array<float>(rows * V);
  lm_head_forward(hidden, rows, logits.as<float>());
  return backend_->nll_sum_host(logits.as<const float>(), rows, V, targets);
}

}  // namespace difftx
