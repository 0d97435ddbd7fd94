// Model::decode_rows: one decoding step for several sequences, each with its own KV cache. The
// layers run as in forward.cpp over N = rows tokens; only the attention goes row by row
// (LayerPass::row_caches), each row at its own position with its own cache.
#include <algorithm>

#include "common/error.h"
#include "model/kv_cache.h"
#include "model/layer_pass.h"
#include "model/model.h"
#include "model/rope_freqs.h"

namespace difftx {

Buffer Model::decode_rows(std::span<const int32_t> ids, std::span<KVCache* const> caches) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int64_t N = static_cast<int64_t>(ids.size()), D = c.hidden_size, d = c.head_dim;
  if (N == 0) fail<ShapeError>("decode_rows: no rows");
  if (caches.size() != ids.size())
    fail<ShapeError>("decode_rows: {} token ids for {} KV caches", ids.size(), caches.size());
  std::vector<int64_t> positions(static_cast<size_t>(N), 0);
  std::vector<float> cos(static_cast<size_t>(N * d / 2)), sin(cos.size());
  for (int64_t i = 0; i < N; ++i) {
    if (ids[i] < 0 || ids[i] >= c.vocab_size)
      fail<ShapeError>("decode_rows: token id {} of row {} is outside the vocabulary [0, {})", ids[i], i, c.vocab_size);
    const KVCache* cache = caches[i];
    if (cache == nullptr) continue;
    if (cache->backend() != backend_.get())
      throw std::logic_error("decode_rows: a KV cache was made for another backend than the model's");
    if (cache->batch() != 1) fail<ShapeError>("decode_rows: the KV cache of row {} holds {} rows, not 1", i, cache->batch());
    if (cache->length() + 1 > cache->capacity())
      fail<ShapeError>("decode_rows: the KV cache of row {} is full (capacity {})", i, cache->capacity());
    positions[i] = cache->length();
    // Each row's RoPE table as its own forward would make it (dynamic scaling looks at the
    // largest position the row has seen).
    const RopeFreqs freqs = rope_freqs(c, std::max(positions[i], cache->max_position()) + 1);
    rope_cos_sin(freqs, &positions[i], 1, cos.data() + i * (d / 2), sin.data() + i * (d / 2));
  }
  const RopeFreqs padding_freqs = rope_freqs(c, 1);
  for (int64_t i = 0; i < N; ++i)
    if (caches[i] == nullptr) rope_cos_sin(padding_freqs, &positions[i], 1, cos.data() + i * (d / 2), sin.data() + i * (d / 2));
  PassInputs in = pack_pass_inputs(be, std::move(cos), std::move(sin), ids.data(), N);
  // The new position of each row is in segment 1, like every position forward() caches unpadded.
  const int32_t one = 1;
  for (KVCache* cache : caches)
    if (cache) be.upload(cache->segments() + cache->length(), &one, sizeof(one));

  PassBuffers buffers = pass_buffers(be, c, N, lora_rank_);
  LayerPass pass = layer_pass(be, buffers, N, 1, 0, 1, in.cos, in.sin, nullptr, nullptr, nullptr, nullptr, nullptr, 1.0f);
  pass.row_caches = caches;
  be.embedding_forward(in.ids, N, embed_, D, pass.x);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) layer_forward(l, pass);
  for (int64_t i = 0; i < N; ++i)
    if (caches[i]) caches[i]->advance(1, std::max(positions[i], caches[i]->max_position()));

  be.rmsnorm_forward(pass.xn, pass.x, final_norm_, N, D, static_cast<float>(c.rms_norm_eps));
  Buffer logits = be.alloc_array<float>(N * c.vocab_size);
  lm_head_forward(pass.xn, N, logits.as<float>());
  return logits;
}

}  // namespace difftx
