// use_tensorboard: true: every number of metrics.jsonl is also in output_dir/runs/ as a
// TensorBoard scalar at its step, read back by the tests' own decoder; a resumed run starts a new
// event file that tells TensorBoard to drop the interrupted run's later steps.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "cli/train_fixture.h"
#include "io/event_reader.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::run_difftx;
namespace fs = std::filesystem;

class TensorBoardCliTest : public test::TrainCliFixture {};

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// Every number of each metrics row (but "step") equals the scalar of the event at that step.
void expect_rows_match(const std::vector<ordered_json>& rows, const std::vector<test::DecodedEvent>& events) {
  std::map<int64_t, const test::DecodedEvent*> by_step;
  for (const auto& e : events)
    if (!e.scalars.empty()) by_step[e.step] = &e;
  for (const auto& row : rows) {
    const int64_t step = row["step"];
    ASSERT_TRUE(by_step.count(step)) << "no event at step " << step;
    const auto& scalars = by_step[step]->scalars;
    size_t numbers = 0;
    for (const auto& [key, value] : row.items()) {
      if (key == "step" || !value.is_number()) continue;
      ++numbers;
      ASSERT_TRUE(scalars.count(key)) << key << " at step " << step;
      EXPECT_EQ(scalars.at(key), value.get<float>()) << key << " at step " << step;
    }
    EXPECT_EQ(scalars.size(), numbers) << "step " << step;
  }
}

TEST_F(TensorBoardCliTest, EventFilesHoldTheMetricsAndAResumeReplacesTheLaterSteps) {
  const fs::path out = dir_->path() / "tb";
  auto r = run_difftx({"train", config("tb", "use_tensorboard: true").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("tensorboard --logdir " + (out / "runs").string()), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("use_tensorboard"), std::string::npos) << "the key is used, not listed as ignored: " << r.err;
  // The summary's last line names the event files too.
  EXPECT_NE(r.out.find("model: " + out.string() + " (metrics.jsonl, checkpoint-8, runs/ for TensorBoard)"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("trained 8 steps in "), std::string::npos) << r.out;
  const auto rows = metrics(out);
  ASSERT_EQ(rows.size(), 8u);
  const auto files = event_files(out / "runs");
  ASSERT_EQ(files.size(), 1u);
  std::string error;
  const auto events = test::read_event_file(files[0], error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(events.size(), 9u) << "the version record and one event per logged step";
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  expect_rows_match(rows, events);
  // The step-4 record carries eval_loss and the monitor's layer_0/... and aggregate/... keys.
  EXPECT_TRUE(events[4].scalars.count("eval_loss"));
  EXPECT_TRUE(events[4].scalars.count("layer_0/lambda_full"));
  EXPECT_TRUE(events[4].scalars.count("aggregate/diff_attn_mix"));

  // Resumed from checkpoint-6: a second file starting with a SessionLog START at step 7, then 7 and 8.
  auto resumed = run_difftx({"train", config("tb", "use_tensorboard: true").string(), "--resume-from-checkpoint",
                             (out / "checkpoint-6").string()});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  // The summary counts this run's steps: 7 and 8, after checkpoint-6.
  EXPECT_NE(resumed.out.find("trained steps 7-8 (resumed at 6; 2 this run) in "), std::string::npos) << resumed.out;
  const auto files2 = event_files(out / "runs");
  ASSERT_EQ(files2.size(), 2u);
  const fs::path newer = files2[0] == files[0] ? files2[1] : files2[0];
  const auto events2 = test::read_event_file(newer, error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(events2.size(), 4u);
  EXPECT_EQ(events2[1].session_status, 1);
  EXPECT_EQ(events2[1].step, 7);
  EXPECT_EQ(events2[2].step, 7);
  EXPECT_EQ(events2[3].step, 8);
  const auto rows2 = metrics(out);
  ASSERT_EQ(rows2.size(), 8u);
  expect_rows_match({rows2[6], rows2[7]}, events2);
}

TEST_F(TensorBoardCliTest, WithoutTheKeyNothingIsWritten) {
  auto r = run_difftx({"train", config("notb", "max_steps: 2").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir_->path() / "notb" / "runs"));
}

TEST_F(TensorBoardCliTest, ANonBooleanValueIsRefusedNamingTheKey) {
  auto r = run_difftx({"train", config("badtb", "use_tensorboard: maybe").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("use_tensorboard"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_->path() / "badtb"));
}

}  // namespace
}  // namespace difftx
