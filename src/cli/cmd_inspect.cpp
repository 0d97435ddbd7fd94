// difftx inspect DIR [--json] [--tensors]
#include "cli/command.h"
#include "common/error.h"
#include "model/model_info.h"

namespace difftx::cli {

Command add_inspect(CLI::App& root) {
  struct Options {
    std::string dir;
    bool json = false, tensors = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "inspect", "Show a model directory's type, shapes, parameter count, dtypes and sharding (reads headers only)");
  app->add_option("dir", o->dir, "Hugging Face model directory")->required();
  app->add_flag("--json", o->json, "Machine-readable output");
  app->add_flag("--tensors", o->tensors, "List every tensor (always included with --json)");
  return {app, [o]() {
            ModelInfo info = model_info(o->dir);
            if (o->json) {
              fmt::print("{}\n", model_info_json(info).dump(2));
            } else {
              fmt::print("{}", model_info_text(info, o->tensors));
            }
            if (info.missing.empty() && info.wrong_shape.empty()) return 0;
            // The report above says what is wrong; the error line makes it a failure for scripts.
            fail<ShapeError>("{}: the checkpoint does not match config.json: {}", o->dir,
                             info.missing.empty() ? info.wrong_shape.front()
                                                  : fmt::format("tensor \"{}\" is missing", info.missing.front()));
          }};
}

}  // namespace difftx::cli
