// `difftx merge-lora CONFIG.yml`: axolotl's merge-lora as a library call. A LoRA adapter in PEFT's
// format (model/lora.h) folded into its base model: W' = W + scaling * B A for every adapted
// Linear, saved modules copied in, written as a plain model directory.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/json_file.h"

namespace difftx {

struct MergeLoraRequest {
  std::filesystem::path config_yaml;                    // base_model, output_dir, lora_model_dir
  std::optional<std::filesystem::path> lora_model_dir;  // overrides the YAML's (axolotl's --lora-model-dir)
  bool overwrite = false;
};

struct MergeLoraResult {
  std::filesystem::path base_model, lora_model_dir, output_dir;  // output_dir: <config's output_dir>/merged
  DType dtype = DType::F32;  // the base model's stored dtype
  size_t modules = 0, whole_tensors = 0;
  int64_t r = 0;
  double scaling = 0, seconds = 0;
  std::vector<std::string> files;  // written into output_dir
};

// The adapter is lora_model_dir (the request's, else the YAML's, else the YAML's output_dir, as
// axolotl). Everything is checked (keys, the adapter against the base model's tensors) before the
// output is prepared; the merged model, config.json and the tokenizer files (from tokenizer_config
// or base_model) go to a staging directory renamed into place. ConfigError / FileError /
// ShapeError name the key, file or tensor.
MergeLoraResult merge_lora(const MergeLoraRequest& request);

ordered_json merge_lora_result_json(const MergeLoraResult& r);

}  // namespace difftx
