// The argument types of the operations every backend implements (kernels/backend.h): plain
// structs of shapes and pointers, with no backend behind them. Pointers address memory of the
// backend that runs the operation (host memory for the CPU, device memory for CUDA).
#pragma once

#include <cstdint>
#include <vector>

namespace difftx {

// The target id of a position that does not count in a loss (transformers' -100 labels).
inline constexpr int32_t kIgnoreIndex = -100;

// A Linear weight [n, k] kept either in float32 or in bfloat16 (one pointer set), or, in CPU
// training with bf16 products, both: the float32 master and its bf16 copy
// (Model::keep_bf16_weight_copies), bf16 products reading the copy and everything else the float32.
struct LinearWeight {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
};

// One output of linear_forward_shared_input: y[m, n] = x · w^T (+ bias), y rows n apart.
struct LinearOut {
  LinearWeight w;
  const float* bias = nullptr;
  int64_t n = 0;
  float* y = nullptr;
};

// The operands of attention's tile products (q·k^T, P·v and their gradients): float32, or rounded
// to bf16 with float32 sums, as PyTorch autocast runs attention's matmuls (the bf16 compute mode;
// CPU: kernels/cpu/attention_tiles_bf16.h, on AVX512_BF16 builds, else float32). Scores, softmax
// statistics, weights P and outputs stay float32 either way.
enum class TileProducts { f32, bf16 };

// The shape of every attention operation (standard and differential, forward and backward):
// which queries see which cached keys, and how many heads each tensor holds.
struct AttentionShape {
  int64_t batch = 1;       // B
  int64_t q_len = 0;       // T: queries, the newest T positions of the cache
  int64_t kv_len = 0;      // S: cached positions, this step's included (S >= T)
  int64_t kv_capacity = 0; // S_cap: allocated cache length per (batch, head)
  int64_t n_q_heads = 0;   // heads in a q row (q_stride >= n_q_heads * d)
  int64_t n_k_heads = 0;   // heads in the key cache
  int64_t n_v_heads = 0;   // heads in the value cache (standard attention: = n_k_heads, and query
                           // head h reads kv head h / (n_q_heads / n_k_heads))
  int64_t head_dim = 0;    // d
  int64_t window = 0;      // sliding window: key s visible to query i only if i - s < window; 0 = off
};

// Head selection per diff-head i (all vectors have one entry per diff-head, v has value_heads).
struct DiffHeadMap {
  std::vector<int32_t> q1, q2;  // q head of each component
  std::vector<int32_t> k1, k2;  // key head of each component
  std::vector<int32_t> v;       // [n_diff_heads * value_heads]: value heads, concatenated in order
  int64_t value_heads = 1;      // 1 (w = d) or 2 (w = 2d)
  int64_t n_diff_heads() const { return static_cast<int64_t>(q1.size()); }
};

struct DiffAttentionParams {
  float scale = 1.0f;                  // 1/sqrt(d)
  float lambda = 0.0f;                 // lambda_eff of the layer (mix * lambda for llama-differential)
  bool norm = false;                   // RMSNorm over w after the difference
  const float* norm_weight = nullptr;  // [w], or nullptr for a norm without weight (diffllama)
  float norm_eps = 1e-6f;
  float out_scale = 1.0f;              // 1, or (1 - lambda_init) for diffllama
};

// What the forward pass keeps of the two softmaxes for the backward pass and the monitor, laid out
// as the backward reads them: the 2 * n_diff_heads maps in one list, maps [0, Hd) the first
// softmaxes (A1) and [Hd, 2Hd) the second (A2).
//   m, l: [B, 2 * Hd, T] float32 row statistics: running max m and sum l of exp(score - m). A row
//         that sees no key has m = -inf and l = 0, and its map contributes zeros.
//   a:    optional (nullptr: not kept), [B, T, 2 * Hd, w]: each map's output A = P V before the
//         difference.
struct DiffAttentionStats {
  float* m = nullptr;
  float* l = nullptr;
  float* a = nullptr;
};

// Where an attention backward accumulates its gradients (backend memory). dq: like the queries
// (rows dq_stride floats apart); dk, dv: like the key and value caches [B, heads, S_cap, d];
// d_norm_weight: [w], the differential layouts' subln weight, or nullptr.
struct AttentionGrads {
  float* dq = nullptr;
  int64_t dq_stride = 0;
  float* dk = nullptr;
  float* dv = nullptr;
  float* d_norm_weight = nullptr;
};

// One contiguous piece of the parameter buffer for the optimizer: elements [0, count) of the
// parameter x, its gradient g and AdamW's moments m and v (backend memory), and whether it decays.
struct AdamWPiece {
  float* x = nullptr;
  float* g = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  uint64_t count = 0;
  bool decay = false;
};

// One AdamW update's constants (train/optimizer.h): x -= decay * x (decayed pieces), m = b1 m + (1 - b1) g,
// v = b2 v + (1 - b2) g^2, x -= step_size * m / (sqrt(v) * inv_sqrt_bias2 + eps).
struct AdamWStep {
  float decay = 0.0f;  // lr * weight_decay
  float step_size = 0.0f;
  float inv_sqrt_bias2 = 1.0f;
  float eps = 0.0f;
  float beta1 = 0.0f, beta2 = 0.0f;
};

}  // namespace difftx
