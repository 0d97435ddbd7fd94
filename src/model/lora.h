// LoRA adapters (Hu et al., arXiv 2106.09685) in PEFT's file format (docs/FORMATS.md §10): read,
// checked against a model, applied unmerged at inference, or merged into the weights.
//
// A targeted Linear y = x W^T + b of a decoder layer becomes y + scaling * (x A^T) B^T with
// A = lora_A [r, in], B = lora_B [out, r], scaling = lora_alpha / r, or lora_alpha / sqrt(r) with
// use_rslora (PEFT's LoraLayer.update_layer). A module in modules_to_save (saved whole under its own
// name) replaces the base tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/aligned_vector.h"
#include "model/layer_tensors.h"
#include "model/params.h"

namespace difftx {

class Model;

// PEFT's prefix of every tensor name in adapter_model.safetensors (a causal LM's PeftModel).
inline constexpr std::string_view kPeftPrefix = "base_model.model.";

// adapter_config.json, the fields that change the function (PEFT's LoraConfig).
struct LoraConfig {
  int64_t r = 0;                // lora_r
  bool r_given = false;         // false: adapter_config.json has no "r" (PEFT's default 8)
  double lora_alpha = 0;
  bool use_rslora = false;      // peft_use_rslora
  double lora_dropout = 0;      // training only
  std::vector<std::string> target_modules;   // names, or {"all-linear"}
  // target_modules was a JSON list: PEFT adapts the modules whose path is, or ends with ".", one of
  // the names, and lora_load refuses tensors of other modules. A string is a regular expression
  // PEFT matches whole (or "all-linear"), not checked here.
  bool target_modules_listed = false;
  std::vector<std::string> modules_to_save;
  std::string base_model_name_or_path;  // the base model the adapter was trained on (informative)
  double scaling() const;
};

// One adapted Linear: which layer and role (layer_tensors.h), A [r, in] and B [out, r] (float32).
struct LoraModule {
  std::string module;  // e.g. "model.layers.0.self_attn.q_proj"
  int64_t layer = 0;
  MatrixRole role = MatrixRole::q_proj;
  int64_t r = 0, in = 0, out = 0;
  std::vector<float> a, b;
};

// A tensor saved whole (modules_to_save): replaces the model's tensor of that name.
struct LoraFullTensor {
  std::string name;  // the model's tensor name, e.g. "lm_head.weight"
  std::vector<float> values;
};

struct LoraAdapter {
  std::filesystem::path dir;
  LoraConfig config;
  std::vector<LoraModule> modules;
  std::vector<LoraFullTensor> full_tensors;
};

// Reads DIR/adapter_config.json and DIR/adapter_model.safetensors (F32/BF16/F16) and checks them
// against `model`: peft_type LORA, r >= 1, each lora_A with its lora_B, shapes [r, in] / [out, r]
// matching the base Linear, every name a module of the model, every value finite, |lora_alpha| <= 1e6.
// Refused with ConfigError (naming the
// file, key or tensor): DoRA, LoRA biases, fan_in_fan_out, rank_pattern/alpha_pattern, adapters on
// the embedding or lm_head (lora_embedding_*, lm_head.lora_*), unknown tensors. FileError when a
// file is missing or unreadable.
LoraAdapter lora_load(const std::filesystem::path& dir, const Model& model);

// The decoder-layer Linear a module path names ("model.layers.3.self_attn.q_proj"), if any.
struct LoraTarget {
  int64_t layer;
  MatrixRole role;
  const ParamSpec* weight;  // the base weight [out, in]
};
std::optional<LoraTarget> lora_target(const Model& model, const std::string& module);

// W += scaling * B A for every module and the saved tensors copied in: the merged model (float32
// weights; before keep_matrices_in_bf16 / place_on).
void lora_merge(const LoraAdapter& adapter, Model& model);

// ---- LoRA training (`adapter: lora` in train; docs/FORMATS.md §10)

struct LoraTrainSpec {
  LoraConfig config;  // r, lora_alpha, use_rslora, lora_dropout, target_modules, modules_to_save
  // Differential models: the differential parameters (lambda vectors, subln, diff-v2's lambda_proj)
  // train whole beside the adapters (lora_train_diff_params, default true): they are new in a
  // converted model, the lambda vectors and subln are no Linear layers to adapt, and a component
  // that starts at zero gives an adapter around it zero gradients.
  bool train_diff_params = true;
};

// The tensors a LoRA run trains, in one table: for each decoder layer and each Linear of it the
// targets name (kMatrixRoles order), "<module>.lora_A.weight" [r, in] (ParamInit::lora_a) and
// "<module>.lora_B.weight" [out, r] (lora_b); then the model's tensors trained whole, under their
// own names and kinds: modules_to_save (as PEFT matches them: every module whose path is or ends in
// the entry, e.g. "embed_tokens", "lm_head", "q_proj", or a module path; or a tensor name) and, with
// train_diff_params, the differential parameters. Targets are Linear names ("q_proj", ...), module
// paths, or "all-linear" (every Linear of the decoder layers but one trained whole). ConfigError,
// naming the key, for r < 1, a target or module that matches nothing, a module both adapted and
// saved whole, or a tied lm_head in modules_to_save.
ParamTable lora_train_table(const Model& model, const LoraTrainSpec& spec);

// Starting values in the table's layout: A uniform in +-1/sqrt(in) (PEFT's kaiming_uniform_ with
// a = sqrt(5)) from `seed`, B zero, whole tensors copied from the model. With `from` (lora_model_dir,
// or a checkpoint to resume), its tensors instead; ConfigError when it holds a tensor the table
// lacks or lacks an adapter the table has (whole tensors it lacks keep the model's values).
AlignedVector<float> lora_train_values(const Model& model, const ParamTable& table, uint64_t seed,
                                       const LoraAdapter* from = nullptr);

// Writes a LoRA-training model's trained tensors (Model::train_lora) in PEFT's format into dir:
// adapter_model.safetensors (F32, every tensor of the trained table under kPeftPrefix) and
// adapter_config.json (the run's LoraConfig, with the adapted Linear names as target_modules and
// modules_to_save as given). Each file is written atomically.
void lora_save(const std::filesystem::path& dir, const Model& model);

// LoRA dropout (training): out[i] = x[i] * keep_i / (1 - p), keep_i when u_i >= p, u_i uniform in
// [0, 1) from (key, i) by a counter-based hash: the backward and a resumed run draw the same mask.
// out may be x.
void lora_dropout(const float* x, int64_t n, double p, uint64_t key, float* out);
// The key of one module's draw in one forward pass.
uint64_t lora_dropout_key(uint64_t pass_seed, int64_t layer, MatrixRole role);

// What Model::train_lora keeps: the trained table, its values (the optimizer's), and for each of
// the model's tensors the offset of its gradient in the table's layout (-1: frozen).
struct LoraTraining {
  LoraConfig config;
  ParamTable table;
  AlignedVector<float> weights;
  AlignedVector<float> b_scaled;  // scaling * B of every module, refreshed after each update
  struct ScaledB {
    uint64_t from, to, numel;  // B's offset in weights, its offset in b_scaled, its size
  };
  std::vector<ScaledB> scaled_b;
  std::vector<int64_t> grad_offset;
  float scaling = 0;  // config.scaling()
};

}  // namespace difftx
