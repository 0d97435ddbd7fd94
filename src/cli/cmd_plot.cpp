// difftx plot RUN_DIR... [-o FILE.png] [--width 1200] [--height 800] [--title TEXT]
#include "cli/command.h"
#include "common/error.h"
#include "plot/run_plot.h"

namespace difftx::cli {

Command add_plot(CLI::App& root) {
  struct Options {
    std::vector<std::string> runs;
    std::string out, title;
    int width = 1200, height = 800;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "plot", "Draw training runs' loss, eval_loss, learning rate, gradient norm and lambdas (metrics.jsonl) as one PNG");
  app->add_option("runs", o->runs, "Training output_dir(s) (or their metrics.jsonl); several overlay")->required();
  app->add_option("-o,--output", o->out, "PNG to write (default: RUN_DIR/metrics.png for one run)")
      ->check(png_output);
  app->add_option("--width", o->width, "Picture width in pixels (at least 320)")->capture_default_str();
  app->add_option("--height", o->height, "Picture height in pixels (at least 240)")->capture_default_str();
  app->add_option("--title", o->title, "Title (default: the runs' directory names)");
  return {app, [o]() {
            std::vector<RunMetrics> runs;
            for (const std::string& r : o->runs) runs.push_back(read_run_metrics(r));
            label_runs(runs);
            std::filesystem::path out = o->out;
            if (out.empty()) {
              if (runs.size() > 1) fail<ConfigError>("plot: {} runs given; say where the PNG goes with -o FILE.png", runs.size());
              out = runs[0].file.parent_path() / "metrics.png";
            }
            write_training_plot(runs, out, {o->width, o->height, o->title});
            for (const RunMetrics& r : runs) {
              const auto [first, last] = step_range(r);
              fmt::print("{}: {} record{}, steps {:g} to {:g}", r.file.string(), r.records.size(),
                         r.records.size() == 1 ? "" : "s", first, last);
              if (r.skipped_lines > 0)
                fmt::print(" ({} line{} that {} not records skipped)", r.skipped_lines, r.skipped_lines == 1 ? "" : "s",
                           r.skipped_lines == 1 ? "is" : "are");
              fmt::print("\n");
            }
            fmt::print("wrote {} ({}x{})\n", out.string(), o->width, o->height);
            return 0;
          }};
}

}  // namespace difftx::cli
