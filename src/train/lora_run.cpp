#include "train/lora_run.h"

#include <spdlog/spdlog.h>

#include <new>
#include <optional>

#include "common/error.h"
#include "model/lora.h"

namespace fs = std::filesystem;

namespace difftx {

std::string lora_run_setup(Model& model, const TrainConfig& c, const fs::path& resume) {
  LoraTrainSpec spec;
  LoraConfig& lc = spec.config;
  lc.r = c.lora_r;
  lc.lora_alpha = c.lora_alpha;
  lc.use_rslora = c.peft_use_rslora;
  lc.target_modules = c.lora_target_modules;
  lc.modules_to_save = c.lora_modules_to_save;
  lc.base_model_name_or_path = c.base_model;
  spec.train_diff_params = c.lora_train_diff_params;
  const fs::path from_dir = !resume.empty() ? resume : fs::path(c.lora_model_dir);
  std::optional<LoraAdapter> from;
  if (!from_dir.empty()) {
    from = lora_load(from_dir, model);
    const LoraConfig& given = from->config;
    if (given.r != lc.r || given.lora_alpha != lc.lora_alpha || given.use_rslora != lc.use_rslora)
      spdlog::info("{} {}: the adapter's r {}, lora_alpha {}{} are used (the config says {}, {}{}); its modules are "
                   "the ones trained",
                   resume.empty() ? "lora_model_dir" : "checkpoint", from_dir.string(), given.r, given.lora_alpha,
                   given.use_rslora ? " (rslora)" : "", lc.r, lc.lora_alpha, lc.use_rslora ? " (rslora)" : "");
    lc.r = given.r;
    lc.lora_alpha = given.lora_alpha;
    lc.use_rslora = given.use_rslora;
    lc.target_modules.clear();  // exactly the adapter's modules
    for (const LoraModule& m : from->modules) lc.target_modules.push_back(m.module);
    if (lc.target_modules.empty()) lc.target_modules = c.lora_target_modules;
  }
  lc.lora_dropout = c.lora_dropout;
  if (lc.lora_alpha == 0)
    spdlog::warn("{}: lora_alpha 0 makes the scaling 0: the adapters never change the model and get no gradient",
                 c.yaml_path.string());
  ParamTable table;
  AlignedVector<float> values;
  try {
    table = lora_train_table(model, spec);
    values = lora_train_values(model, table, c.seed, from ? &*from : nullptr);
  } catch (const ConfigError& e) {
    fail<ConfigError>("{}: {}", c.yaml_path.string(), e.what());
  } catch (const std::bad_alloc&) {
    fail<ConfigError>("{}: the LoRA tensors ({} parameters) do not fit in memory", c.yaml_path.string(),
                      table.parameter_count());
  }
  int64_t adapters = 0, adapter_params = 0, whole_params = 0;
  for (const ParamSpec& p : table.params()) {
    if (p.kind == ParamKind::adapter) {
      adapters += p.name.ends_with(".lora_A.weight") ? 1 : 0;
      adapter_params += static_cast<int64_t>(p.numel);
    } else {
      whole_params += static_cast<int64_t>(p.numel);
    }
  }
  const auto total = static_cast<double>(model.table().parameter_count());
  const std::string line = fmt::format(
      "LoRA: r {}, lora_alpha {} (scaling {:.4g}{}), lora_dropout {}, {} adapted Linear layers ({} parameters) and {} "
      "parameters trained whole{}; {:.3f}% of the model's {} parameters train; frozen matrices in {}{}",
      lc.r, lc.lora_alpha, lc.scaling(), lc.use_rslora ? ", rslora" : "", lc.lora_dropout, adapters, adapter_params,
      whole_params,
      whole_params == 0 ? ""
      : lc.modules_to_save.empty() ? " (the differential parameters)"
      : spec.train_diff_params && model.config().is_differential() ? " (the differential parameters and lora_modules_to_save)"
                                                                  : " (lora_modules_to_save)",
      100.0 * static_cast<double>(adapter_params + whole_params) / total, model.table().parameter_count(),
      model.matrices_in_bf16() ? "bf16 (the bf16 key)" : "float32", from ? "; adapter values from " + from_dir.string() : "");
  model.train_lora(std::move(table), std::move(values), lc);
  return line;
}

}  // namespace difftx
