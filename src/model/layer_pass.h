// What one forward call shares between its decoder layers (private to src/model): sizes, the
// backend's activation buffers (one set reused by every layer), where keys go, and the trace.
// forward.cpp runs every layer on it; backward.cpp runs one layer again on its own pass when the
// backward recomputes activations (ForwardOptions::recompute_activations).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "io/model_config.h"
#include "kernels/backend.h"

namespace difftx {

class KVCache;
struct ForwardTrace;
struct LayerTrace;

// The activation buffers of a pass over N tokens, in the backend's memory (shapes at LayerPass).
struct PassBuffers {
  Buffer x, xn, q, k, v, att, att_pairs, lambda_logits, gate, up;
  Buffer lora_t, lora_act;  // LoRA adapters: [N, r] and [N, I]
};
// lora_rank: the rank of an attached LoRA adapter (0: none).
PassBuffers pass_buffers(Backend& be, const ModelConfig& c, int64_t N, int64_t lora_rank = 0);

// The host inputs of one call in the backend's memory, crossing over in one copy:
// [cos | sin | ids] (each part 64-byte aligned); the host RoPE tables (a trace keeps them) and the
// largest position the cache will have seen.
struct PassInputs {
  Buffer buffer;
  const float* cos = nullptr;  // [N, d/2], on the backend
  const float* sin = nullptr;
  const int32_t* ids = nullptr;  // [N], on the backend
  std::vector<float> cos_host, sin_host;
  int64_t max_position = 0;
};
// cos, sin: [N, d/2] on the host; ids: [N].
PassInputs pack_pass_inputs(Backend& be, std::vector<float> cos, std::vector<float> sin, const int32_t* ids,
                            int64_t N);

struct LayerPass {
  Backend& be;
  int64_t B, T, N, past, capacity;
  float* x;        // [N, D] residual stream
  float* xn;       // [N, D] normed input of a block
  float* q;        // [N, QH*d]
  float* k;        // [N, KH*d]
  float* v;        // [N, KV*d]
  float* att;      // [N, H*d]
  float* att_pairs;     // [N, QH*d] diff-v2: every query head's attention before the paired combine
  float* lambda_logits; // [N, H] diff-v2: x · lambda_proj^T
  float* gate;     // [N, I]
  float* up;       // [N, I]
  float* lora_t;   // [N, r] LoRA: x · A^T
  float* lora_act; // [N, I] LoRA: silu(gate) * up, the down projection's input
  const float *cos, *sin;   // [N, d/2]
  const int32_t* segments;  // [B, capacity], or nullptr when every position is in segment 1
  KVCache* cache;
  float *scratch_k, *scratch_v;  // [B, KH, T, d], [B, KV, T, d] without a cache
  ForwardTrace* trace;
  float diff_attn_mix;
  // Recomputation: every layer's activations go to this one LayerTrace (the trace's `work`), and
  // with a trace (the first forward) each layer's input also to trace->layers[l].x_in; the
  // backward's recomputing pass has work and no trace. nullptr: each layer to trace->layers[l].
  LayerTrace* work = nullptr;
  const std::vector<int64_t>* kept_layers = nullptr;  // with work and a trace: to trace->layers[l] all the same
  uint64_t lora_dropout_seed = 0;  // ForwardOptions::lora_dropout_seed
  // Model::decode_rows: row i (T = 1) attends with its own cache (B = 1), nullptr for a padding
  // row; empty: the pass's cache (or scratch) holds every row.
  std::span<KVCache* const> row_caches = {};
};

// A pass over `buffers` with its non-buffer fields from the arguments.
LayerPass layer_pass(Backend& be, const PassBuffers& buffers, int64_t B, int64_t T, int64_t past, int64_t capacity,
                     const float* cos, const float* sin, const int32_t* segments, KVCache* cache, float* scratch_k,
                     float* scratch_v, ForwardTrace* trace, float diff_attn_mix);

}  // namespace difftx
