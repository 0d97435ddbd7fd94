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
#include <string>
#include <vector>

#include "model/layer_tensors.h"

namespace difftx {

class Model;

// adapter_config.json, the fields that change the function (PEFT's LoraConfig).
struct LoraConfig {
  int64_t r = 0;                // lora_r
  bool r_given = false;         // false: adapter_config.json has no "r" (PEFT's default 8)
  double lora_alpha = 0;
  bool use_rslora = false;      // peft_use_rslora
  double lora_dropout = 0;      // training only
  std::vector<std::string> target_modules;   // names, or {"all-linear"}
  std::vector<std::string> modules_to_save;
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

// W += scaling * B A for every module and the saved tensors copied in: the merged model (float32
// weights; before keep_matrices_in_bf16 / place_on).
void lora_merge(const LoraAdapter& adapter, Model& model);

}  // namespace difftx
