// Loading and saving a Model as a Hugging Face directory (config.json + safetensors weights).
#pragma once

#include <filesystem>

#include "io/weight_files.h"
#include "io/dtype.h"
#include "model/model.h"

namespace difftx {

// A model directory opened once: config.json parsed and the weight files' headers read (single
// file or sharded); what a command needs of it (config, stored dtype, the model) comes from here
// without reading anything twice. Throws FileError / ConfigError naming the directory or file.
class ModelDir {
 public:
  explicit ModelDir(const std::filesystem::path& dir);
  const std::filesystem::path& path() const { return files_.dir(); }
  const ModelConfig& config() const { return config_; }
  const WeightFiles& weight_files() const { return files_; }
  // The dtype the weights are stored in (all tensors alike), else config.json's, else F32: what
  // outputs derived from this model are written in by default.
  DType stored_dtype() const;
  // The model. Every tensor the config needs must be present with the shape docs/FORMATS.md §1
  // gives; tensors it does not need are reported (warning) and skipped. Throws FileError /
  // ShapeError naming the file and tensor. matrices_in_bf16: the matrices are read straight into
  // bfloat16 (Model(config, true)), so the peak memory is the bf16 model's, not float32's.
  Model load(bool matrices_in_bf16 = false) const;

 private:
  ModelConfig config_;
  WeightFiles files_;
};

// ModelDir(dir).load().
Model model_load(const std::filesystem::path& dir);

// Writes config.json (dtype recorded) and the weights in `dtype` into `dir`, which must exist
// (use a StagedDirectory for a crash-safe output).
void model_save(const Model& model, const std::filesystem::path& dir, DType dtype,
                const WeightFilesWriteOptions& options = {});

}  // namespace difftx
