// difftx convert-diff-transformer CONFIG.yml [--zero-init] [--init random|identity] [--sublayer-norm|--no-sublayer-norm]
//   [--split-heads] [--mirror-weights] [--plain-o-proj] [--format llama-differential|diffllama|diff-v1|diff-v2] [--output-dir DIR]
//   [--dtype f32|bf16|f16] [--seed N] [--overwrite] [--debug] [--json]
#include <fmt/ranges.h>

#include <string>
#include <vector>

#include "cli/command.h"
#include "common/error.h"
#include "convert/convert_workflow.h"

namespace difftx::cli {

namespace {

// --format NAME: one of the differential layouts (io/model_config.h kDifferentialLayouts).
AttentionLayout format_layout(const std::string& name) {
  std::vector<std::string> names;
  for (AttentionLayout l : kDifferentialLayouts) {
    if (attention_layout_name(l) == name) return l;
    names.emplace_back(attention_layout_name(l));
  }
  fail<ConfigError>("--format \"{}\" is not one of {}", name, fmt::join(names, ", "));
}

}  // namespace

Command add_convert(CLI::App& root) {
  struct Options {
    std::string config, output_dir, format = "llama-differential", dtype, init = "random";
    ConvertOptions convert;
    bool overwrite = false, json = false, debug = false;
    CLI::Option *sublayer_on = nullptr, *sublayer_off = nullptr, *output_dir_option = nullptr;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "convert-diff-transformer",
      "Convert a Llama-family model (base_model of an axolotl config) to differential attention");
  app->add_option("config", o->config, "axolotl config YAML (base_model: a local model directory; output_dir)")
      ->required();
  app->add_flag("--zero-init", o->convert.zero_init,
                "Initialise the negative component (new q/k rows, lambda vectors, lambda_init) to zero");
  app->add_option("--init", o->init,
                  "How the new parameters start: random (the seed's rule) or identity (exactly the base model's "
                  "function, and every new parameter trains; llama-differential without subln (implies "
                  "--no-sublayer-norm) or diff-v2")
      ->check(CLI::IsMember({"random", "identity"}))
      ->capture_default_str();
  CLI::Option* on = app->add_flag("--sublayer-norm")->description("Apply RMSNorm per head before o_proj (the default)");
  CLI::Option* off = app->add_flag("--no-sublayer-norm")->description("Do not apply RMSNorm per head before o_proj");
  on->excludes(off);
  o->sublayer_on = on;
  o->sublayer_off = off;
  app->add_flag("--split-heads", o->convert.split_heads,
                "Split the model's heads into positive and negative halves instead of doubling q/k");
  app->add_flag("--mirror-weights", o->convert.mirror_weights,
                "Copy the positive q/k rows to the negative component (double mode)");
  app->add_flag("--plain-o-proj", o->convert.plain_o_proj,
                "Copy o_proj unchanged (the seed's conversion) instead of reordering its input columns to follow "
                "the value heads paired by --split-heads / --format diffllama");
  app->add_option("--format", o->format, "Output layout: llama-differential (the seed's), diffllama (transformers'), diff-v1 (the paper's) or diff-v2 (Microsoft's DIFF V2)")
      ->capture_default_str();
  o->output_dir_option =
      app->add_option("--output-dir", o->output_dir, "Output directory (default: output_dir of the config)");
  app->add_option("--dtype", o->dtype, "Weights dtype f32, bf16 or f16 (default: the base model's)");
  app->add_option("--seed", o->convert.seed, "Seed for the freshly initialised parameters (0 to 2^64 - 1)")
      ->capture_default_str()
      ->check(seed_value);
  app->add_flag("--overwrite", o->overwrite, "Replace a non-empty output directory");
  app->add_flag("--json", o->json, "Print the report as JSON");
  app->add_flag("--debug", o->debug,
                "Greedy-generate 20 tokens from \"The quick brown fox\" with both models and compare");

  return {app, [o]() {
            ConvertRequest req;
            req.config_yaml = o->config;
            req.options = o->convert;
            if (!o->output_dir.empty()) req.output_dir = o->output_dir;
            if (!o->dtype.empty()) {
              req.dtype = dtype_from_cli_name(o->dtype);
              if (!req.dtype) fail<ConfigError>("--dtype \"{}\" is not one of f32, bf16, f16", o->dtype);
            }
            req.options.layout = format_layout(o->format);
            req.options.init = o->init == "identity" ? ConvertInit::identity : ConvertInit::random;
            req.options.sublayer_norm_given = o->sublayer_on->count() + o->sublayer_off->count() > 0;
            // identity keeps the base function only without the per-head norm: unless the user asked
            // for subln (refused with the reason), --init identity means no subln.
            req.options.sublayer_norm = req.options.sublayer_norm_given
                                            ? o->sublayer_off->count() == 0
                                            : req.options.init != ConvertInit::identity;
            if (o->output_dir_option->count() > 0 && o->output_dir.empty())
              fail<ConfigError>("--output-dir is empty");
            req.overwrite = o->overwrite;
            req.debug = o->debug;
            ConvertResult r = convert_diff_transformer(req);
            if (o->json) {
              fmt::print("{}\n", convert_result_json(r).dump(2));
              return 0;
            }
            fmt::print("converted {} ({}, {:.2f} M parameters) -> {} ({}, {:.2f} M parameters, {})\n",
                       r.base_model.string(), r.base_model_type, r.base_parameters / 1e6, r.output_dir.string(),
                       r.layout, r.parameters / 1e6, dtype_name(r.dtype));
            fmt::print("time: load {:.2f} s, convert {:.2f} s, save {:.2f} s\n", r.load_seconds, r.convert_seconds,
                       r.save_seconds);
            fmt::print("files: {}\n", fmt::join(r.files, ", "));
            if (r.debug) fmt::print("{}", debug_report_text(*r.debug));
            return 0;
          }};
}

}  // namespace difftx::cli
