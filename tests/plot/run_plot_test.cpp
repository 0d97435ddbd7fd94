// difftx plot's parts: round ticks, tick labels, reading metrics.jsonl (and refusing what is not
// one), the panels' series, and a PNG of the asked size with the curves drawn in it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "common/error.h"
#include "plot/png_check.h"
#include "plot/run_plot.h"
#include "test_util.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;

TEST(NiceTicksTest, RoundStepsInsideTheRange) {
  EXPECT_EQ(nice_ticks(0, 200, 5), (std::vector<double>{0, 50, 100, 150, 200}));
  EXPECT_EQ(nice_ticks(2.83, 10.4, 4), (std::vector<double>{4, 6, 8, 10}));
  const auto small = nice_ticks(-1.2e-4, 3.1e-4, 4);
  ASSERT_EQ(small.size(), 5u);
  EXPECT_NEAR(small[0], -1e-4, 1e-12);
  EXPECT_NEAR(small[4], 3e-4, 1e-12);
  EXPECT_EQ(small[1], 0.0) << "zero is exactly zero, not 1e-20";
  for (double lo : {-7.3, 0.001, 12345.0})
    for (int target : {2, 5, 9}) {
      const auto t = nice_ticks(lo, lo * 1.5 + 10, target);
      ASSERT_GE(t.size(), 2u);
      EXPECT_GE(t.front(), lo);
      EXPECT_LE(t.back(), lo * 1.5 + 10);
    }
}

TEST(NiceTicksTest, HugeMagnitudesEndAndGiveDistinctTicks) {
  const auto t = nice_ticks(1e16, 1e16 + 4, 5);  // k + 1 == k in double near here
  EXPECT_LE(t.size(), 1000u);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_GT(t[i], t[i - 1]);
  EXPECT_TRUE(nice_ticks(-1e308, 1e308, 5).size() <= 1000u);
}

TEST(NiceTicksTest, LabelsAreShortAndTellNeighboursApart) {
  EXPECT_EQ(tick_label(0.30000000000000004, 0.1), "0.3");
  EXPECT_EQ(tick_label(150, 50), "150");
  EXPECT_EQ(tick_label(0.0002, 0.0001), "0.0002");
  EXPECT_EQ(tick_label(2.05, 0.05), "2.05");
  EXPECT_EQ(tick_label(1000, 5), "1000");
  EXPECT_EQ(tick_label(0.25, 0.05), "0.25");
  EXPECT_EQ(tick_label(2e-5, 1e-5), "2e-05") << "%g below steps of 1e-4";
  EXPECT_EQ(tick_label(0.00105, 5e-5), "0.00105");
  EXPECT_EQ(tick_label(1e308, 2e307), "1e+308");
  EXPECT_EQ(tick_label(8e307, 2e307), "8e+307");
  EXPECT_EQ(tick_label(1.5e-5, 5e-6), "1.5e-05");
  EXPECT_EQ(tick_label(0, 1e-6), "0");
  // One notation per axis: ticks 6e6 .. 1.4e7 are all %g, not "8000000" beside "1.2e+07".
  const std::vector<double> big = {6e6, 8e6, 1e7, 1.2e7, 1.4e7};
  for (double t : big) EXPECT_NE(tick_label(t, 2e6, largest_magnitude(big)).find("e+"), std::string::npos) << t;
  EXPECT_EQ(tick_label(8e6, 2e6, largest_magnitude(big)), "8e+06");
  EXPECT_EQ(tick_label(1.2e7, 2e6, largest_magnitude(big)), "1.2e+07");
  EXPECT_EQ(tick_label(8e6, 2e6), "8000000") << "alone, fixed";
}

class RunPlotTest : public ::testing::Test {
 protected:
  void write_run(const std::string& name, const std::string& lines) {
    fs::create_directories(dir_ / name);
    test::write_text(dir_ / name / "metrics.jsonl", lines);
  }
  test::TempDir dir_;
};

const char* kRun =
    R"({"step":1,"epoch":0.1,"loss":10.5,"learning_rate":0.001,"grad_norm":3.0}
{"step":2,"epoch":0.2,"loss":9.0,"learning_rate":0.002,"grad_norm":2.0,"layer_0/lambda_full":0.8,"layer_11/lambda_full":0.7,"layer_2/lambda_full":0.75,"aggregate/diff_attn_mix":0.5}
{"step":3,"epoch":0.3,"loss":8.0,"learning_rate":0.0015,"grad_norm":1.5,"eval_loss":8.5}
{"step":4,"epoch":0.4,"loss":7.5,"learning_rate":0.001,"grad_norm":1.0,"layer_0/lambda_full":0.6,"layer_11/lambda_full":0.65,"layer_2/lambda_full":0.7,"aggregate/diff_attn_mix":1.0,"eval_loss":7.9}
)";

TEST_F(RunPlotTest, ReadsTheRecordsAndBuildsThePanels) {
  write_run("diff", kRun);
  const RunMetrics run = read_run_metrics(dir_ / "diff");
  EXPECT_EQ(run.label, "diff");
  EXPECT_EQ(run.records.size(), 4u);
  EXPECT_EQ(run.skipped_lines, 0);
  const auto charts = training_charts({run});
  ASSERT_EQ(charts.size(), 4u);
  ASSERT_EQ(charts[0].series.size(), 2u);
  EXPECT_EQ(charts[0].series[0].label, "loss");
  EXPECT_EQ(charts[0].series[0].y, (std::vector<double>{10.5, 9.0, 8.0, 7.5}));
  EXPECT_EQ(charts[0].series[1].label, "eval_loss");
  EXPECT_EQ(charts[0].series[1].x, (std::vector<double>{3, 4}));
  EXPECT_TRUE(charts[0].series[1].dashed && charts[0].series[1].markers);
  EXPECT_EQ(charts[1].series[0].y, (std::vector<double>{0.001, 0.002, 0.0015, 0.001}));
  EXPECT_EQ(charts[2].series[0].y, (std::vector<double>{3.0, 2.0, 1.5, 1.0}));
  // lambda: layers in numeric order (0, 2, 11), then the warm-up mix, dashed.
  ASSERT_EQ(charts[3].series.size(), 4u);
  EXPECT_EQ(charts[3].series[0].label, "layer_0/lambda_full");
  EXPECT_EQ(charts[3].series[1].label, "layer_2/lambda_full");
  EXPECT_EQ(charts[3].series[2].label, "layer_11/lambda_full");
  EXPECT_EQ(charts[3].series[2].y, (std::vector<double>{0.7, 0.65}));
  EXPECT_EQ(charts[3].series[3].label, "diff_attn_mix");
  EXPECT_TRUE(charts[3].series[3].dashed);
  for (const LineChart& c : charts) {  // one step axis for every panel
    EXPECT_EQ(c.x_min, 1);
    EXPECT_EQ(c.x_max, 4);
  }
}

TEST_F(RunPlotTest, SeveralRunsAreLabelledByTheirDirectory) {
  write_run("diff", kRun);
  write_run("base", R"({"step":1,"loss":10.0}
{"step":2,"loss":9.5}
)");
  const auto charts = training_charts({read_run_metrics(dir_ / "diff"), read_run_metrics(dir_ / "base" / "metrics.jsonl")});
  ASSERT_EQ(charts[0].series.size(), 3u);
  EXPECT_EQ(charts[0].series[2].label, "base: loss");
  EXPECT_EQ(charts[3].series.size(), 4u) << "the base run adds no lambda";
  EXPECT_EQ(charts[0].series[0].label, "diff: loss");
  // Colours differ within a panel.
  EXPECT_NE(charts[0].series[0].color.r, charts[0].series[2].color.r);
}

TEST_F(RunPlotTest, ThePngHasTheSizeAskedAndTheCurvesInIt) {
  write_run("diff", kRun);
  const fs::path png = dir_ / "out.png";
  write_training_plot({read_run_metrics(dir_ / "diff")}, png, {900, 600, ""});
  const auto s = test::png_stats(png, palette_color(0));
  ASSERT_TRUE(s.ok);
  EXPECT_EQ(s.width, 900);
  EXPECT_EQ(s.height, 600);
  EXPECT_GT(s.non_white, 900 * 600 / 50) << "frames, text and lines";
  EXPECT_GT(s.near, 200) << "the first series' colour (tab10 blue) is drawn";
  EXPECT_TRUE(fs::is_empty(dir_.path()) == false);
  for (const auto& e : fs::directory_iterator(dir_.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << "no temporary file left: " << e.path();
}

TEST_F(RunPlotTest, DiffV2RunsShowTheirPerTokenLambdaMean) {
  write_run("v2", R"({"step":1,"loss":3,"layer_1/lambda_mean":0.5,"layer_1/lambda_std":0.1,"aggregate/lambda_mean_mean":0.5}
{"step":2,"loss":2,"layer_1/lambda_mean":0.45,"layer_1/lambda_std":0.1,"aggregate/lambda_mean_mean":0.45}
)");
  const auto charts = training_charts({read_run_metrics(dir_ / "v2")});
  ASSERT_EQ(charts[3].series.size(), 1u);
  EXPECT_EQ(charts[3].series[0].label, "layer_1/lambda_mean");
  EXPECT_EQ(charts[3].series[0].y, (std::vector<double>{0.5, 0.45}));
}

TEST_F(RunPlotTest, StepsOutOfOrderAreDrawnInOrder) {
  write_run("ooo", "{\"step\":30,\"loss\":3}\n{\"step\":10,\"loss\":1}\n{\"step\":20,\"loss\":2}\n");
  const RunMetrics run = read_run_metrics(dir_ / "ooo");
  EXPECT_EQ(step_range(run), (std::pair<double, double>{10, 30}));
  const auto charts = training_charts({run});
  EXPECT_EQ(charts[0].series[0].x, (std::vector<double>{10, 20, 30}));
  EXPECT_EQ(charts[0].series[0].y, (std::vector<double>{1, 2, 3}));
}

TEST_F(RunPlotTest, RunsOfTheSameNameAreLabelledByTheirPaths) {
  write_run("a/run", kRun);
  write_run("b/run", kRun);
  std::vector<RunMetrics> runs = {read_run_metrics(dir_ / "a" / "run"), read_run_metrics(dir_ / "b" / "run")};
  label_runs(runs);
  EXPECT_EQ(runs[0].label, (dir_ / "a" / "run").string());
  EXPECT_EQ(runs[1].label, (dir_ / "b" / "run").string());
}

TEST_F(RunPlotTest, ManySeriesAndExtremeValuesStillDraw) {
  std::string lines;
  for (int step = 1; step <= 3; ++step) {
    lines += "{\"step\":" + std::to_string(step) + ",\"loss\":" + (step == 2 ? "1e308" : "-1e308");
    for (int l = 0; l < 60; ++l) lines += ",\"layer_" + std::to_string(l) + "/lambda_full\":0." + std::to_string(l + 10);
    lines += "}\n";
  }
  write_run("many", lines);
  const fs::path png = dir_ / "many.png";
  write_training_plot({read_run_metrics(dir_ / "many")}, png, {800, 600, std::string(300, 'T')});
  const auto s = test::png_stats(png);
  EXPECT_EQ(s.width, 800);
  EXPECT_GT(s.non_white, 800 * 600 / 50);
}

TEST_F(RunPlotTest, AnExistingFileThatIsNotAPngIsNeverReplaced) {
  write_run("keep", kRun);
  const fs::path metrics = dir_ / "keep" / "metrics.jsonl";
  EXPECT_THROW(write_training_plot({read_run_metrics(dir_ / "keep")}, metrics, {900, 600, ""}), ConfigError);
  EXPECT_EQ(test::read_text(metrics), kRun);
  // An earlier picture is replaced.
  const fs::path png = dir_ / "again.png";
  write_training_plot({read_run_metrics(dir_ / "keep")}, png, {900, 600, ""});
  write_training_plot({read_run_metrics(dir_ / "keep")}, png, {700, 500, ""});
  EXPECT_EQ(test::png_stats(png).width, 700);
  // Through a symbolic link the picture it names is replaced, and the link stays a link.
  const fs::path link = dir_ / "link.png";
  fs::create_symlink(png, link);
  write_training_plot({read_run_metrics(dir_ / "keep")}, link, {800, 500, ""});
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link)));
  EXPECT_EQ(test::png_stats(png).width, 800);
  // A FIFO (like /dev/null, not a regular file) and a directory are refused and stay what they are.
  const fs::path fifo = dir_ / "pipe.png";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  try {
    write_training_plot({read_run_metrics(dir_ / "keep")}, fifo, {700, 500, ""});
    ADD_FAILURE() << "a FIFO was replaced";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pipe.png: exists and is a FIFO (named pipe); refusing to replace it"),
              std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_THROW(write_training_plot({read_run_metrics(dir_ / "keep")}, dir_ / "keep", {700, 500, ""}), ConfigError);
  EXPECT_TRUE(fs::is_directory(dir_ / "keep"));
}

TEST_F(RunPlotTest, ALineCutByACrashIsSkippedAndCounted) {
  write_run("cut", std::string(kRun) + R"({"step":5,"loss":7.)");
  const RunMetrics run = read_run_metrics(dir_ / "cut");
  EXPECT_EQ(run.records.size(), 4u);
  EXPECT_EQ(run.skipped_lines, 1);
}

void expect_file_error(const fs::path& run, const std::string& needle) {
  try {
    read_run_metrics(run);
    FAIL() << "expected a FileError for " << run;
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(run.string()), std::string::npos) << e.what();
  }
}

TEST_F(RunPlotTest, BadRunsAreRefusedNamingThePath) {
  fs::create_directories(dir_ / "empty");
  expect_file_error(dir_ / "empty", "no metrics.jsonl here");
  expect_file_error(dir_ / "missing", "no such run directory");
  write_run("blank", "");
  expect_file_error(dir_ / "blank", "holds no metrics record");
  write_run("garbage", "not json\n[1,2]\n{\"loss\":1}\n{\"step\":\"two\"}\n");
  expect_file_error(dir_ / "garbage", "4 lines are something else");
  fs::create_directories(dir_ / "dirmetrics" / "metrics.jsonl");
  expect_file_error(dir_ / "dirmetrics", "metrics.jsonl: is not a file");
}

TEST_F(RunPlotTest, APictureSizeOutOfRangeIsRefused) {
  write_run("diff", kRun);
  EXPECT_THROW(write_training_plot({read_run_metrics(dir_ / "diff")}, dir_ / "x.png", {10, 600, ""}), ConfigError);
  EXPECT_THROW(write_training_plot({read_run_metrics(dir_ / "diff")}, dir_ / "x.png", {319, 600, ""}), ConfigError);
  EXPECT_FALSE(fs::exists(dir_ / "x.png"));
}

TEST_F(RunPlotTest, AnUnwritableOutputIsAFileError) {
  write_run("diff", kRun);
  EXPECT_THROW(write_training_plot({read_run_metrics(dir_ / "diff")}, dir_ / "no" / "such" / "x.png", {900, 600, ""}),
               FileError);
}

}  // namespace
}  // namespace difftx
