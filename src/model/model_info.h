// What `difftx inspect` reports about a model directory, read from config.json and the
// safetensors headers only (no weights are loaded).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "io/model_config.h"

namespace difftx {

struct ModelInfo {
  std::filesystem::path dir;
  ModelConfig config;
  std::vector<std::string> files;          // weight files (shards)
  std::map<std::string, uint64_t> dtypes;  // dtype name -> tensor count
  uint64_t tensor_count = 0;
  uint64_t parameter_count = 0;            // elements stored in the checkpoint
  uint64_t expected_parameter_count = 0;   // elements the config needs
  uint64_t bytes = 0;                      // tensor data bytes
  std::vector<std::string> missing;        // tensors the config needs but the checkpoint lacks
  std::vector<std::string> wrong_shape;    // "<file>: tensor \"<name>\" has shape [..] but config.json needs [..]",
                                           // or an unloadable dtype
  std::vector<std::string> unused;         // tensors the config does not use
  struct Tensor {
    std::string name, dtype, shape;  // shape as text: "[4, 16]"
    std::vector<int64_t> dims;
  };
  std::vector<Tensor> tensors;             // sorted by name
};

// Throws FileError/ConfigError when config.json or a weights file cannot be read; a checkpoint that
// does not match its config is reported in `missing` / `wrong_shape`, not thrown.
ModelInfo model_info(const std::filesystem::path& dir);

ordered_json model_info_json(const ModelInfo& info);
std::string model_info_text(const ModelInfo& info, bool list_tensors);

}  // namespace difftx
