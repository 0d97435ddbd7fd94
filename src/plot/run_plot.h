// `difftx plot`: the curves of one or more training runs (their metrics.jsonl) as one PNG of four
// panels: loss and eval_loss; learning_rate; grad_norm; lambda_full per monitored layer (diff-v2:
// lambda_mean) with aggregate/diff_attn_mix. Several runs overlay, each series labelled "run: key".
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "plot/line_chart.h"

namespace difftx {

struct RunMetrics {
  std::string label;                  // the run directory's name
  std::filesystem::path file;         // its metrics.jsonl
  std::vector<ordered_json> records;  // the JSON objects with a numeric "step", in file order
  int64_t skipped_lines = 0;          // lines that were not such a record (e.g. one cut by a crash)
};

// Reads RUN_DIR/metrics.jsonl (or the file itself when `run` names a file). Throws FileError when
// there is none or it holds no record with a numeric "step"; other bad lines are counted in
// skipped_lines (a live run may be writing its last line).
RunMetrics read_run_metrics(const std::filesystem::path& run);

// The lowest and highest step of the run's records.
std::pair<double, double> step_range(const RunMetrics& run);

// Runs that share a directory name are labelled by their paths instead.
void label_runs(std::vector<RunMetrics>& runs);

// The four panels of the plot.
std::vector<LineChart> training_charts(const std::vector<RunMetrics>& runs);

struct PlotOptions {
  int width = 1200, height = 800;  // pixels, at least 320 x 240
  std::string title;               // default: the runs' labels
};

// Draws the panels of `runs` in a 2 x 2 grid and writes the PNG. Throws FileError/ConfigError.
void write_training_plot(const std::vector<RunMetrics>& runs, const std::filesystem::path& png,
                         const PlotOptions& options);

}  // namespace difftx
