// `difftx convert-diff-transformer CONFIG.yml`: the whole command as a library call (spec §5).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/model_files.h"
#include "convert/convert_debug.h"
#include "config/local_dir.h"
#include "convert/diff_convert.h"
#include "io/dtype.h"
#include "io/json_file.h"

namespace difftx {

struct ConvertRequest {
  std::filesystem::path config_yaml;                 // axolotl config: base_model, output_dir
  std::optional<std::filesystem::path> output_dir;   // overrides the YAML's output_dir
  std::optional<DType> dtype;                        // default: the base checkpoint's dtype
  ConvertOptions options;
  bool overwrite = false;
  bool debug = false;  // compare greedy generations of the base and converted models (needs a tokenizer)
};

struct ConvertResult {
  std::filesystem::path base_model, output_dir;
  std::string base_model_type, layout;
  DType dtype = DType::F32;
  uint64_t base_parameters = 0, parameters = 0;
  double load_seconds = 0, convert_seconds = 0, save_seconds = 0;
  std::vector<std::string> files;  // written into output_dir
  std::optional<DebugReport> debug;
};

// Validates everything (YAML keys, flags against the base config.json, the tokenizer when
// debugging, the output directory) before loading weights; converts; runs the --debug comparison;
// writes model weights, config.json, the tokenizer files and axolotl_config.yml into a staging
// directory renamed into place. The tokenizer comes from the YAML's tokenizer_config (a local
// directory) when set, else from base_model. The YAML's special_tokens (bos_token, eos_token,
// pad_token, ...) must name tokens of the vocabulary (ConfigError otherwise) and are written into
// the output's tokenizer_config.json (and special_tokens_map.json when present).
ConvertResult convert_diff_transformer(const ConvertRequest& request);

ordered_json convert_result_json(const ConvertResult& r);


}  // namespace difftx
