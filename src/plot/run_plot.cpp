#include "plot/run_plot.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>

#include <fmt/format.h>

#include "common/error.h"

namespace fs = std::filesystem;

namespace difftx {

RunMetrics read_run_metrics(const fs::path& run) {
  RunMetrics m;
  std::error_code ec;
  const bool is_dir = fs::is_directory(run, ec);
  m.file = is_dir ? run / "metrics.jsonl" : run;
  if (!fs::exists(run, ec)) fail<FileError>("{}: no such run directory or metrics file", run.string());
  if (is_dir && fs::exists(m.file, ec) && !fs::is_regular_file(m.file, ec))
    fail<FileError>("{}: is not a file", m.file.string());
  if (!fs::is_regular_file(m.file, ec))
    fail<FileError>("{}: no metrics.jsonl here (expected the output_dir of a difftx train run, or its metrics.jsonl)",
                    run.string());
  const fs::path named = is_dir ? run : run.parent_path();
  m.label = fs::absolute(named).lexically_normal().filename().string();
  if (m.label.empty()) m.label = fs::absolute(named).lexically_normal().parent_path().filename().string();
  std::ifstream in(m.file);
  if (!in) fail<FileError>("{}: cannot be read", m.file.string());
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    try {
      ordered_json r = json_parse(line, fmt::format("{} line {}", m.file.string(), number));
      if (r.is_object() && r.contains("step") && r["step"].is_number()) {
        m.records.push_back(std::move(r));
        continue;
      }
    } catch (const Error&) {
    }
    m.skipped_lines += 1;
  }
  if (m.records.empty())
    fail<FileError>("{}: holds no metrics record (a JSON object with a numeric \"step\" per line){}", m.file.string(),
                    m.skipped_lines > 0 ? fmt::format("; {} line{} something else", m.skipped_lines,
                                                      m.skipped_lines == 1 ? " is" : "s are")
                                        : "");
  return m;
}

namespace {

// The key's values by step (sorted: a file written out of order still draws left to right).
Series series_of(const RunMetrics& run, const std::string& key) {
  std::vector<std::pair<double, double>> points;
  for (const auto& r : run.records) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_number()) continue;
    points.emplace_back(r["step"].get<double>(), it->get<double>());
  }
  std::stable_sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  Series s;
  for (const auto& [x, y] : points) {
    s.x.push_back(x);
    s.y.push_back(y);
  }
  return s;
}

void add(LineChart& chart, const std::vector<RunMetrics>& runs, const RunMetrics& run, const std::string& key,
         const std::string& shown, bool dashed, bool markers) {
  Series s = series_of(run, key);
  if (s.x.empty()) return;
  s.label = runs.size() > 1 ? run.label + ": " + shown : shown;
  s.dashed = dashed;
  s.markers = markers;
  s.color = palette_color(chart.series.size());
  chart.series.push_back(std::move(s));
}

// The monitored layers' lambda keys of a run, by layer: layer_{l}/lambda_full, or diff-v2's
// layer_{l}/lambda_mean.
std::vector<std::string> lambda_keys(const RunMetrics& run) {
  static const std::regex full(R"(layer_(\d+)/lambda_full)"), mean(R"(layer_(\d+)/lambda_mean)");
  std::map<long, std::string> fulls, means;
  for (const auto& r : run.records)
    for (const auto& [k, v] : r.items()) {
      std::smatch m;
      if (std::regex_match(k, m, full)) fulls[std::stol(m[1])] = k;
      else if (std::regex_match(k, m, mean)) means[std::stol(m[1])] = k;
    }
  std::vector<std::string> keys;
  for (const auto& [l, k] : fulls.empty() ? means : fulls) keys.push_back(k);
  return keys;
}

}  // namespace

std::vector<LineChart> training_charts(const std::vector<RunMetrics>& runs) {
  LineChart loss{"loss", "step", "cross-entropy (nats/token)", {}, "no loss logged"};
  LineChart lr{"learning rate", "step", "learning_rate", {}, "no learning_rate logged"};
  LineChart grad{"gradient norm", "step", "grad_norm", {}, "no grad_norm logged"};
  LineChart lambda{"lambda per monitored layer", "step", "lambda", {},
                   "no lambda logged (a base model, or no diff_attn_log_every step yet)"};
  for (const RunMetrics& run : runs) {
    add(loss, runs, run, "loss", "loss", false, false);
    add(loss, runs, run, "eval_loss", "eval_loss", true, true);
    add(lr, runs, run, "learning_rate", "learning_rate", false, false);
    add(grad, runs, run, "grad_norm", "grad_norm", false, false);
    for (const std::string& k : lambda_keys(run)) add(lambda, runs, run, k, k, false, false);
    add(lambda, runs, run, "aggregate/diff_attn_mix", "diff_attn_mix", true, false);
  }
  std::vector<LineChart> charts = {loss, lr, grad, lambda};
  // One step axis for the four panels: every run's first to last record.
  for (const RunMetrics& run : runs)
    for (const auto& r : run.records) {
      const double step = r["step"].get<double>();
      for (LineChart& c : charts) {
        c.x_min = std::isnan(c.x_min) ? step : std::min(c.x_min, step);
        c.x_max = std::isnan(c.x_max) ? step : std::max(c.x_max, step);
      }
    }
  return charts;
}

std::pair<double, double> step_range(const RunMetrics& run) {
  double lo = run.records.front()["step"].get<double>(), hi = lo;
  for (const auto& r : run.records) {
    lo = std::min(lo, r["step"].get<double>());
    hi = std::max(hi, r["step"].get<double>());
  }
  return {lo, hi};
}

void label_runs(std::vector<RunMetrics>& runs) {
  std::map<std::string, int> count;
  for (const RunMetrics& r : runs) count[r.label] += 1;
  for (RunMetrics& r : runs)  // two runs of one name: their paths tell them apart
    if (count[r.label] > 1) r.label = (r.file.filename() == "metrics.jsonl" ? r.file.parent_path() : r.file).string();
}

void write_training_plot(const std::vector<RunMetrics>& runs, const fs::path& png, const PlotOptions& options) {
  if (options.width < 320 || options.height < 240)
    fail<ConfigError>("plot size {}x{}: at least 320x240 pixels for four panels", options.width, options.height);
  Canvas canvas(options.width, options.height);
  std::string title = options.title;
  if (title.empty()) {
    for (const RunMetrics& r : runs) title += (title.empty() ? "" : " vs ") + r.label;
  }
  const double top = 34;
  draw_title(canvas, title, 16);
  const auto charts = training_charts(runs);
  const double w = canvas.width() / 2.0, h = (canvas.height() - top) / 2.0;
  for (size_t i = 0; i < charts.size(); ++i)
    draw_line_chart(canvas, {static_cast<double>(i % 2) * w, top + static_cast<double>(i / 2) * h, w, h}, charts[i]);
  canvas.save_png(png);
}

}  // namespace difftx
