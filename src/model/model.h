// A Llama-family causal language model in float32 (spec §1): configuration, the parameter
// table, the weights in one contiguous buffer, and the forward pass with an optional KV cache.
// The forward pass runs on the model's backend (kernels/backend.h): the CPU by default, or a GPU
// after place_on(); it is written once for every backend.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "common/aligned_vector.h"
#include "io/model_config.h"
#include "kernels/backend.h"
#include "model/layer_tensors.h"
#include "model/params.h"

namespace difftx {

class KVCache;
struct ForwardTrace;
struct LoraAdapter;
struct LoraConfig;
struct LoraTraining;
struct LayerPass;
struct LayerTrace;


// A batch of token ids with optional padding and explicit positions.
struct TokenBatch {
  int64_t batch = 1;                   // B
  int64_t seq_len = 0;                 // T
  std::vector<int32_t> ids;            // [B, T]
  std::vector<int64_t> position_ids;   // [B, T]; empty: cache length + t (transformers' default)
  std::vector<uint8_t> attention_mask; // [B, T], 0 = padding; empty: no padding
  // [B, T], packed sequences: a token attends only to earlier tokens of the same segment
  // (document); 0 = padding. Empty: one segment per row.
  std::vector<int32_t> segment_ids;
};

// Options of one forward (or forward-and-backward) call.
struct ForwardOptions {
  // The warm-up mix of llama-differential (docs/FORMATS.md §3): lambda_eff = mix * lambda. 1 at
  // inference; training passes min(1, step / diff_attn_warmup_steps). Ignored by other layouts.
  float diff_attn_mix = 1.0f;
  // Training (gradient_checkpointing): the trace keeps only each decoder layer's input, and
  // loss_and_backward recomputes the layer's activations from it just before the layer's backward
  // (the same kernels on the same input: bit-identical gradients). Memory model: trace.h.
  bool recompute_activations = false;
  // With recompute_activations: decoder layers whose activations the trace keeps all the same and
  // the backward does not recompute (the layers the lambda monitor reads after a logging step).
  std::vector<int64_t> kept_layers = {};
  // LoRA training with lora_dropout > 0: the seed of this pass's dropout masks (lora_dropout_key);
  // the backward draws the same ones. 0: no dropout (inference, evaluation).
  uint64_t lora_dropout_seed = 0;
};

enum class LogitsMode {
  all,     // logits for every position: [B, T, V]
  last,    // only the last position of each row: [B, V] (generation)
  hidden,  // no logits: the final-normed hidden states [B, T, D], for lm_head_forward in chunks
           // (evaluation over long contexts without a [T, V] buffer)
};

// The tensors of a Hugging Face Llama-family checkpoint for `config` (names and shapes of spec §1;
// differential layouts add those of spec §3 / §4).
ParamTable llama_param_table(const ModelConfig& config);

class Model {
 public:
  // Allocates zeroed weights for the config. Throws ConfigError when they cannot be allocated.
  // matrices_in_bf16: allocated as keep_matrices_in_bf16() leaves them (no float32 copy of the
  // matrices ever exists: loading a large model for LoRA training or bf16 inference).
  explicit Model(ModelConfig config, bool matrices_in_bf16 = false);
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  const ModelConfig& config() const { return config_; }
  const ParamTable& table() const { return table_; }
  // The float32 buffer in the table's layout. std::logic_error after keep_matrices_in_bf16() or
  // place_on() a device.
  std::span<float> weights();
  std::span<const float> weights() const;
  // A float32 parameter: std::out_of_range when absent; std::logic_error for a matrix kept in bf16.
  float* param(std::string_view name);
  const float* param(std::string_view name) const;

  // Inference with every matrix (embedding, projections, lm_head) kept in bfloat16: half the
  // memory, and half the bytes each decoded token streams. Each float32 weight is rounded to
  // nearest-even once (exact for a model loaded from a BF16 checkpoint); the arithmetic stays
  // float32 (LinearWeight). Norms, biases and lambdas stay float32. Afterwards the model serves
  // forward(), loss() and lm_head_forward() only: weights(), loss_and_backward() and param() of a
  // matrix throw std::logic_error. The float32 buffer is freed (peak: float32 + bf16 copies).
  void keep_matrices_in_bf16();
  bool matrices_in_bf16() const { return !compact_offsets_.empty(); }
  // Training with bf16 products (the bf16 key), as PyTorch autocast's weight cast cache: a bfloat16
  // copy of every float32 matrix (embedding, projections, lm_head), which bf16 products read
  // instead of rounding the weights in every product (twice per layer and step, and once per
  // lm_head chunk); float32 products and the embedding lookup still read the float32 matrices,
  // which stay the master values. trained_weights_updated() refreshes the copies after each
  // update; call refresh_bf16_weight_copies() after changing weights any other way. Costs 2 bytes
  // per matrix element. std::logic_error with matrices kept in bf16 or on a device.
  void keep_bf16_weight_copies();
  void refresh_bf16_weight_copies();
  bool has_bf16_weight_copies() const { return !bf16_copies_.empty(); }
  // A parameter's values in float32 wherever they are kept (bf16 matrices widened), and back
  // (rounded to bf16 for a bf16 matrix). Host memory only (std::logic_error on a device).
  void read_tensor(const ParamSpec& p, float* out) const;
  void write_tensor(const ParamSpec& p, const float* values);
  // A bf16 matrix's storage (loading); std::logic_error for a tensor kept in float32.
  uint16_t* bf16_param(const ParamSpec& p);
  // Bytes the parameters occupy now (float32 buffer + bf16 buffer), on the host or on the device.
  uint64_t weight_bytes() const { return float_count_ * sizeof(float) + bf16_count_ * sizeof(uint16_t); }

  // Moves the weights to `backend` (a GPU: kernels/backend.h's make_backend): the matrices as they
  // are kept now (float32, or bfloat16 after keep_matrices_in_bf16()), everything else float32;
  // the host copies are freed. forward(), loss(), next_token_nll() and KV caches made with
  // backend() then run there; as with bf16, the model serves inference only (weights(), param()
  // and loss_and_backward() throw std::logic_error). A host-memory backend (the CPU) keeps the
  // weights where they are. Throws DeviceError when they do not fit on the device.
  void place_on(std::shared_ptr<Backend> backend);
  const std::shared_ptr<Backend>& backend() const { return backend_; }
  bool on_device() const { return !backend_->host_memory(); }

  // Applies a LoRA adapter unmerged in every later forward (model/lora.h): its whole saved tensors
  // (modules_to_save) are copied into the weights, and each adapted Linear's output gains
  // scaling * (x A^T) B^T, A and B kept float32. Call it before keep_matrices_in_bf16(); the model
  // then serves inference on the CPU only (loss_and_backward and place_on() a device throw
  // std::logic_error). std::logic_error when an adapter is attached already.
  void attach_lora(const LoraAdapter& adapter);
  bool has_lora() const { return lora_rank_ > 0; }

  // LoRA training (model/lora.h): `table` (lora_train_table) with its starting `values` becomes what
  // loss_and_backward differentiates (gradients in the table's layout) and the optimizer updates
  // (trained_weights()); the model's own tensors are frozen but those the table holds whole, which
  // trained_weights_updated() copies in after each update (rounded to bf16 for a bf16 matrix: the
  // trained table keeps the float32 master values). The frozen matrices may be kept in bf16
  // (Model(config, true), keep_matrices_in_bf16()): their products then widen them block by block.
  // std::logic_error when an adapter is attached already, or after place_on() a device.
  void train_lora(ParamTable table, AlignedVector<float> values, const LoraConfig& config);
  bool lora_training() const { return lora_train_ != nullptr; }
  const LoraConfig& lora_config() const;  // of train_lora; std::logic_error without
  // What training updates: the LoRA table and values, or the model's own (full fine-tuning).
  const ParamTable& trained_table() const;
  std::span<float> trained_weights();
  std::span<const float> trained_weights() const;
  void trained_weights_updated();

  // lambda of layer l (spec §2), for differential layouts.
  float layer_lambda(int64_t layer) const;
  // The addresses of layer l's tensors in the backend's memory (host memory unless placed on a
  // device), by role (layer_tensors.h), without looking anything up by name.
  const LayerWeights& layer_weights(int64_t layer) const { return layers_[static_cast<size_t>(layer)]; }

  // Runs the model on `batch`. With a cache, the batch's tokens are appended to it (and attend to
  // everything cached before); without, the batch is a whole sequence. logits: [B, T, V] or [B, V]
  // (LogitsMode), copied to the host. Throws ShapeError/ConfigError on ids out of range, a batch
  // that does not match the cache, or a cache that is full.
  // With a trace (training, CPU; no cache), the activations the backward pass needs are kept in it.
  void forward(const TokenBatch& batch, KVCache* cache, LogitsMode mode, std::vector<float>& logits,
               ForwardTrace* trace = nullptr, const ForwardOptions& options = {}) const;
  // The same, leaving the result in the backend's memory: logits [B, T, V] or [B, V], or for
  // LogitsMode::hidden the final-normed hidden states [B, T, D].
  Buffer forward_on_backend(const TokenBatch& batch, KVCache* cache, LogitsMode mode,
                            ForwardTrace* trace = nullptr, const ForwardOptions& options = {}) const;

  // One decoding step of N independent sequences (continuous batching, infer/batch_decoder.h): row
  // i's token ids[i] is appended to caches[i] (batch 1, its own length; position = its length) and
  // attends to what that cache holds; the projections and the MLP run over all N rows at once.
  // caches[i] == nullptr: a padding row (its logits are meaningless; nothing is cached). Returns
  // the logits [N, V] in the backend's memory. Row i's logits depend only on row i's token and
  // cache for a given N (every product is row-independent), so a sequence decodes to the same
  // values whichever rows run beside it. Throws ShapeError for ids outside the vocabulary, a cache
  // of another batch size or a full cache, and std::logic_error for a cache of another backend.
  Buffer decode_rows(std::span<const int32_t> ids, std::span<KVCache* const> caches) const;

  // Next-token cross-entropy of the batch and its gradient (training). targets: [B, T], the id
  // position t should predict (kIgnoreIndex where it does not count). Returns the SUM of the
  // counted positions' losses; gradients of grad_scale * that sum are ACCUMULATED into `grads`
  // (the layout of weights(); tied embeddings get both uses). grad_scale is normally
  // 1 / (counted positions of the whole optimizer step). `trace` is working memory (reused).
  // layer_done(l), when given, is called as soon as decoder layer l's gradients are complete
  // (layers last to first; data-parallel training starts their sum over the ranks there); the
  // embedding, final norm and lm_head gradients are complete when the call returns.
  double loss_and_backward(const TokenBatch& batch, std::span<const int32_t> targets, float grad_scale,
                           std::span<float> grads, ForwardTrace& trace, const ForwardOptions& options = {},
                           const std::function<void(int64_t layer)>& layer_done = nullptr) const;

  // The same sum of losses without gradients (evaluation).
  double loss(const TokenBatch& batch, std::span<const int32_t> targets, const ForwardOptions& options = {}) const;

  // logits[rows, V] = hidden[rows, D] · lm_head^T, for hidden states from LogitsMode::hidden.
  // Both pointers address the backend's memory.
  void lm_head_forward(const float* hidden, int64_t rows, float* logits) const;
  // Sum over r < rows of -log softmax(lm_head(hidden[r]))[targets[r]] (nats, double), with the
  // hidden rows on the backend (forward_on_backend, LogitsMode::hidden) and the targets on the host
  // (kIgnoreIndex rows count nothing). Evaluation; memory: one [rows, V] block of logits.
  double next_token_nll(const float* hidden, int64_t rows, const int32_t* targets) const;

 private:
  void bind();
  DiffAttentionParams diff_params(int64_t layer, float diff_attn_mix) const;
  void layer_forward(int64_t l, LayerPass& pass) const;
  void attend(int64_t l, const LayerPass& pass, LayerTrace* trace) const;
  void paired_attention_forward(const LayerPass& pass, const float* k_cache, const float* v_cache,
                                LayerTrace* trace) const;
  ModelConfig config_;
  ParamTable table_;
  AlignedVector<float> weights_;  // 64-byte aligned: each parameter starts on a cache line
  // After keep_matrices_in_bf16(): the matrices, and each parameter's offset (in elements) into
  // weights_bf16_ (matrices) or into the compacted weights_ (the rest), by table index.
  AlignedVector<uint16_t> weights_bf16_;
  std::vector<uint64_t> compact_offsets_;
  uint64_t float_count_ = 0, bf16_count_ = 0;  // elements of the two buffers, wherever they are
  // keep_bf16_weight_copies(): the rounded matrices, and each matrix's offset into them by table
  // index (kNoCopy for the other parameters).
  AlignedVector<uint16_t> bf16_copies_;
  std::vector<uint64_t> bf16_copy_offsets_;
  // The backend the weights live on; on a device they are in these buffers (the host ones are
  // empty) and the per-layer lambdas are kept on the host, computed once when placed.
  std::shared_ptr<Backend> backend_;
  Buffer device_weights_, device_weights_bf16_;
  std::vector<float> placed_lambda_;
  uint64_t float_offset(const ParamSpec& p) const;
  // The offsets of keep_matrices_in_bf16's layout (by table index; matrices into the bf16 buffer,
  // the rest into the compact float32 one) and the two buffers' sizes.
  std::vector<uint64_t> bf16_layout(uint64_t& floats, uint64_t& halves) const;
  void layer_backward(int64_t l, const ForwardTrace& trace, const LayerTrace& layer, const ForwardOptions& options,
                      std::vector<float>& dx, float* grads) const;
  // The gradient address of a tensor in `grads` (the trained table's layout), nullptr when frozen.
  float* grad_at(const ParamSpec* p, float* grads) const;
  // Sum of next-token losses from final hidden states [N, D]; with d_hidden, also accumulates
  // grad_scale * its gradient into d_hidden and g_head (the lm_head or tied embedding gradient).
  double head_loss(const float* hidden, std::span<const int32_t> targets, float grad_scale, float* d_hidden,
                   float* g_head) const;
  LinearWeight embed_;              // [V, D]
  const float* final_norm_ = nullptr;
  LinearWeight lm_head_;            // [V, D]; the embedding when tied
  // Table entries by role, built once from the table's names (no lookup by name per step).
  struct HeadIndex {
    const ParamSpec *embed, *final_norm, *lm_head;  // lm_head: the embedding when tied
  } head_index_{};
  std::vector<LayerIndex> layer_index_;
  std::vector<LayerWeights> layers_;
  // attach_lora(): per layer, each adapted Linear's A [r, in] and scaling * B [out, r] (r = 0: none),
  // in lora_weights_ (the backend's memory). train_lora(): A in the trained weights, scaling * B in
  // LoraTraining::b_scaled, and the offsets of A's and B's gradients.
  struct LoraPair {
    LinearWeight a, b_scaled;
    int64_t r = 0;
    int64_t a_grad = -1, b_grad = -1;
  };
  std::vector<LayerTensors<LoraPair, const float*>> lora_layers_;
  std::shared_ptr<Backend> lora_backend_;  // owns lora_weights_ (place_on may swap backend_ for another CPU one)
  Buffer lora_weights_;
  int64_t lora_rank_ = 0;
  std::shared_ptr<LoraTraining> lora_train_;
  // y[N, out] += scaling * (dropout(x[N, in]) A^T) B^T when layer l's `role` holds an adapter
  // (dropout in training passes only).
  void lora_forward(const LayerPass& pass, int64_t l, MatrixRole role, const float* x, int64_t in, float* y,
                    int64_t out) const;
  // Its backward: from dy [N, out] the gradients of A and B (into grads) and dx [N, in] += d x.
  void lora_backward(int64_t l, MatrixRole role, const float* x, int64_t N, int64_t in, const float* dy, int64_t out,
                     float* dx, float* grads, uint64_t dropout_seed) const;
};

}  // namespace difftx
