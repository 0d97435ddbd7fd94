// Loading and saving a Model as a Hugging Face directory (config.json + safetensors weights).
#pragma once

#include <filesystem>

#include "io/weight_files.h"
#include "io/dtype.h"
#include "model/model.h"

namespace difftx {

// Reads dir/config.json and the weights (single file or sharded). Every tensor the config needs
// must be present with the shape spec §1 gives; tensors it does not need are reported (warning)
// and skipped. Throws FileError / ConfigError / ShapeError naming the file and tensor or key.
Model model_load(const std::filesystem::path& dir);

// The dtype a model directory's weights are stored in (all tensors alike), else config.json's,
// else F32: what outputs derived from it are written in by default.
DType checkpoint_dtype(const std::filesystem::path& dir, const ModelConfig& config);

// Writes config.json (dtype recorded) and the weights in `dtype` into `dir`, which must exist
// (use a StagedDirectory for a crash-safe output).
void model_save(const Model& model, const std::filesystem::path& dir, DType dtype,
                const WeightFilesWriteOptions& options = {});

}  // namespace difftx
