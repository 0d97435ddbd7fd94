// difftx init --config CONFIG.json --out DIR [--seed N] [--dtype f32|bf16|f16]
#include <spdlog/spdlog.h>

#include <chrono>

#include "cli/command.h"
#include "common/error.h"
#include "io/atomic_file.h"
#include "io/weight_files.h"
#include "io/model_config.h"
#include "model/model_dir.h"
#include "model/init.h"

namespace difftx::cli {

Command add_init(CLI::App& root) {
  struct Options {
    std::string config, out, dtype = "f32", max_shard_size = "5GB";
    uint64_t seed = 0;
    bool overwrite = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "init", "Create a randomly initialised Hugging Face checkpoint from a config.json (like transformers' from_config)");
  app->add_option("--config", o->config, "config.json of a llama, mistral, qwen2 or qwen3 model")->required();
  app->add_option("--out", o->out, "Output model directory (created; must be empty unless --overwrite)")->required();
  app->add_option("--seed", o->seed, "Random seed (0 to 2^64 - 1)")->capture_default_str()->check(seed_value);
  app->add_option("--dtype", o->dtype, "Weights dtype: f32, bf16 or f16")->capture_default_str();
  app->add_option("--max-shard-size", o->max_shard_size, "Shard the weights above this size (e.g. 5GB, 500MB)")
      ->capture_default_str();
  app->add_flag("--overwrite", o->overwrite, "Replace a non-empty output directory");

  return {app, [o]() {
            auto dtype = dtype_from_cli_name(o->dtype);
            if (!dtype) fail<ConfigError>("--dtype \"{}\" is not one of f32, bf16, f16", o->dtype);
            WeightFilesWriteOptions write_options;
            try {
              write_options.max_shard_bytes = parse_byte_size(o->max_shard_size);
            } catch (const ConfigError& e) {
              fail<ConfigError>("--max-shard-size: {}", e.what());
            }
            ModelConfig config = model_config_load(o->config);
            StagedDirectory out(o->out, o->overwrite, {o->config});
            auto start = std::chrono::steady_clock::now();
            Model model(config);
            model_init_random(model, o->seed);
            model_save(model, out.staging(), *dtype, write_options);
            out.commit();
            double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            fmt::print("created {}: {} {} parameters ({:.2f} M), {}, seed {}, {:.1f} s\n", o->out,
                       model.config().model_type, model.table().parameter_count(),
                       static_cast<double>(model.table().parameter_count()) / 1e6, dtype_name(*dtype), o->seed, seconds);
            return 0;
          }};
}

}  // namespace difftx::cli
