// difftx merge-lora CONFIG.yml [--lora-model-dir DIR] [--overwrite] [--json]
#include <fmt/ranges.h>

#include "cli/command.h"
#include "convert/merge_lora.h"

namespace difftx::cli {

Command add_merge_lora(CLI::App& root) {
  struct Options {
    std::string config, lora_model_dir;
    bool overwrite = false, json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "merge-lora", "Fold a LoRA adapter (PEFT's format) into its base model: writes <output_dir>/merged");
  app->add_option("config", o->config,
                  "axolotl config YAML (base_model; output_dir; lora_model_dir, default output_dir)")
      ->required();
  app->add_option("--lora-model-dir", o->lora_model_dir, "The adapter directory (overrides lora_model_dir)");
  app->add_flag("--overwrite", o->overwrite, "Replace an existing <output_dir>/merged");
  app->add_flag("--json", o->json, "Print the report as JSON");
  return {app, [o]() {
            MergeLoraRequest req{o->config, std::nullopt, o->overwrite};
            if (!o->lora_model_dir.empty()) req.lora_model_dir = o->lora_model_dir;
            const MergeLoraResult r = merge_lora(req);
            if (o->json) {
              fmt::print("{}\n", merge_lora_result_json(r).dump(2));
              return 0;
            }
            fmt::print("merged {} ({} modules, r {}, scaling {:g}{}) into {} -> {} ({}, {:.2f} s)\n",
                       r.lora_model_dir.string(), r.modules, r.r, r.scaling,
                       r.whole_tensors ? fmt::format(", {} whole tensor{}", r.whole_tensors, r.whole_tensors == 1 ? "" : "s") : "",
                       r.base_model.string(), r.output_dir.string(), dtype_name(r.dtype), r.seconds);
            fmt::print("files: {}\n", fmt::join(r.files, ", "));
            return 0;
          }};
}

}  // namespace difftx::cli
