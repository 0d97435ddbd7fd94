// The named parameter table: every parameter of a model is a slice of one contiguous float32
// buffer (one buffer per kind of state, so that gradients and optimizer state can use
// the same table and offsets).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace difftx {

// How transformers' _init_weights initialises a parameter (from_config).
enum class ParamInit {
  normal,  // N(0, initializer_range): Linear and Embedding weights
  ones,    // RMSNorm weights
  zeros,   // biases
  lambda,       // N(0, lambda_std_dev): the lambda vectors of differential attention (spec §2)
  lambda_init,  // the constant lambda_init(layer) of spec §2, stored as a 0-dim tensor
  lora_a,  // LoRA's A [r, in]: PEFT's kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in))
  lora_b,  // LoRA's B [out, r]: zeros (the adapted model starts as the base model)
};

// What a parameter is. It decides how the parameter is trained (weight decay, trainability), kept
// for inference (keep_matrices_in_bf16) and initialised; the table sets it from ParamInit.
enum class ParamKind {
  matrix,    // Linear and embedding weights (rank 2): decayed; kept in bf16 for inference
  bias,      // Linear biases: not decayed
  norm,      // RMSNorm weights (layer norms, model.norm, q/k norms, subln): not decayed
  lambda,    // the lambda vectors of differential attention: decayed
  constant,  // lambda_init: stored, never trained
  adapter,   // LoRA's A and B (model/lora.h): decayed, as the Hugging Face Trainer decays them
};

// Weight decay applies to matrices and lambda vectors: the Hugging Face Trainer's rule (no decay
// for biases and norm layers), which by name misses the seed's subln; by kind it is the norm it is.
inline bool weight_decay_applies(ParamKind k) {
  return k == ParamKind::matrix || k == ParamKind::lambda || k == ParamKind::adapter;
}
inline bool is_trainable(ParamKind k) { return k != ParamKind::constant; }

struct ParamSpec {
  std::string name;            // Hugging Face tensor name, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // PyTorch shape ([out, in] for Linear weights)
  ParamInit init = ParamInit::normal;
  ParamKind kind = ParamKind::matrix;
  uint64_t offset = 0;         // in floats, into the buffer; 64-byte aligned
  uint64_t numel = 0;
  int64_t layer = -1;          // decoder layer, or -1
};

class ParamTable {
 public:
  // Appends a parameter. Throws std::invalid_argument on a duplicate name.
  void add(std::string name, std::vector<int64_t> shape, ParamInit init, int64_t layer = -1);
  const std::vector<ParamSpec>& params() const { return params_; }
  const ParamSpec* find(std::string_view name) const;  // nullptr when absent
  const ParamSpec& at(std::string_view name) const;     // std::out_of_range when absent
  uint64_t buffer_floats() const { return end_; }        // buffer size, alignment padding included
  uint64_t parameter_count() const { return count_; }    // sum of numel

 private:
  std::vector<ParamSpec> params_;
  std::map<std::string, size_t, std::less<>> index_;
  uint64_t end_ = 0;
  uint64_t count_ = 0;
};

}  // namespace difftx
