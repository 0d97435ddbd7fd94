#include "convert/merge_lora.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "config/axolotl_yaml.h"
#include "config/model_keys.h"
#include "io/atomic_file.h"
#include "io/model_files.h"
#include "model/lora.h"
#include "model/model_dir.h"

namespace difftx {

namespace fs = std::filesystem;

MergeLoraResult merge_lora(const MergeLoraRequest& req) {
  const auto t0 = std::chrono::steady_clock::now();
  const AxolotlYaml yaml = axolotl_yaml_load(req.config_yaml);
  const ModelKeys keys = model_keys_read(yaml);
  const ModelKeyDirs dirs = model_keys_resolve(keys, req.config_yaml);
  const std::optional<std::string> output_dir = yaml.string("output_dir");
  if (!output_dir || output_dir->empty())
    fail<ConfigError>("{}: no output_dir (merge-lora writes <output_dir>/merged)", req.config_yaml.string());
  MergeLoraResult r;
  r.base_model = dirs.model_dir;
  r.output_dir = fs::path(*output_dir) / "merged";
  bool defaulted = false;
  if (req.lora_model_dir) {
    r.lora_model_dir = *req.lora_model_dir;
  } else if (auto dir = yaml.string("lora_model_dir"); dir && !dir->empty()) {
    r.lora_model_dir = *dir;
  } else {
    r.lora_model_dir = *output_dir;  // axolotl's default: the adapter a training run wrote there
    defaulted = true;
  }
  if (std::error_code ec; defaulted && !fs::exists(r.lora_model_dir / "adapter_config.json", ec))
    fail<ConfigError>("{}: no lora_model_dir, so the adapter is read from output_dir {} (axolotl's default), which "
                      "holds no adapter_config.json; set lora_model_dir or pass --lora-model-dir",
                      req.config_yaml.string(), r.lora_model_dir.string());

  const ModelDir base_dir(r.base_model);
  r.dtype = base_dir.stored_dtype();
  Model model = base_dir.load();
  const LoraAdapter adapter = lora_load(r.lora_model_dir, model);
  StagedDirectory out(r.output_dir, req.overwrite, {r.base_model, dirs.tokenizer_dir, r.lora_model_dir, req.config_yaml});
  lora_merge(adapter, model);
  model_save(model, out.staging(), r.dtype);
  copy_model_files(dirs.tokenizer_dir, out.staging());
  for (const auto& e : fs::directory_iterator(out.staging())) r.files.push_back(e.path().filename().string());
  std::sort(r.files.begin(), r.files.end());
  out.commit();
  r.modules = adapter.modules.size();
  r.whole_tensors = adapter.full_tensors.size();
  r.r = adapter.config.r;
  r.scaling = adapter.config.scaling();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

ordered_json merge_lora_result_json(const MergeLoraResult& r) {
  return {{"base_model", r.base_model.string()}, {"lora_model_dir", r.lora_model_dir.string()},
          {"output_dir", r.output_dir.string()}, {"dtype", std::string(dtype_name(r.dtype))},
          {"modules", r.modules}, {"whole_tensors", r.whole_tensors}, {"r", r.r}, {"scaling", r.scaling},
          {"seconds", r.seconds}, {"files", r.files}};
}

}  // namespace difftx
