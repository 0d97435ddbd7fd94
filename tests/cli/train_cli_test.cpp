// `difftx train` and `difftx evaluate` end to end on a small converted model with the real
// Mistral tokenizer and real English text: loss goes down, the plugin's metrics are logged,
// checkpoints are pruned and resume exactly, runs are reproducible, NaN stops training.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <fstream>
#include <random>

#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include "io/json_file.h"
#include "kernels/backend.h"
#include "cli/monitor_keys.h"
#include "cli/train_fixture.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::run_difftx;
namespace fs = std::filesystem;

class TrainCliTest : public test::TrainCliFixture {};

TEST_F(TrainCliTest, TrainsLogsAndCheckpoints) {
  const fs::path cfg = config("run", "");
  auto before = run_difftx({"evaluate", cfg.string(), "--json"});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  auto r = run_difftx({"train", cfg.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto summary = json_parse(r.out, "train --json");
  EXPECT_EQ(summary["steps"], 8);
  EXPECT_NE(r.err.find("step 8/8"), std::string::npos) << r.err;
  const fs::path out = dir_->path() / "run";
  // The trained model loads, evaluates lower on the same data, and generates.
  test::write_text(dir_->path() / "after.yml",
                   test::read_text(cfg).replace(test::read_text(cfg).find(dir_->path().string() + "/diff"),
                                                (dir_->path().string() + "/diff").size(), out.string()));
  auto after = run_difftx({"evaluate", (dir_->path() / "after.yml").string(), "--json"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  const double l0 = json_parse(before.out, "e")["train_loss"], l1 = json_parse(after.out, "e")["train_loss"];
  EXPECT_TRUE(std::isfinite(l1));
  EXPECT_LT(l1, l0) << "training lowers the loss on its own data";
  EXPECT_EQ(run_difftx({"generate", out.string(), "--prompt", "Hello", "--max-new-tokens", "4"}).exit_code, 0);
  // Checkpoints: saved at steps 3 and 6 and the final 8, pruned to 2; each is complete.
  EXPECT_FALSE(fs::exists(out / "checkpoint-3"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-6" / "trainer_state.json"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-8" / "optimizer.safetensors"));
  // metrics.jsonl: one record per logged step, the plugin's keys at steps 2, 4, 6, 8.
  auto rows = metrics(out);
  ASSERT_EQ(rows.size(), 8u);
  for (const auto& row : rows) {
    for (const char* key : {"step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second"})
      EXPECT_TRUE(row.contains(key)) << key;
    EXPECT_TRUE(std::isfinite(row["loss"].get<double>()));
  }
  const auto& r4 = rows[3];
  EXPECT_EQ(r4["step"], 4);
  EXPECT_TRUE(r4.contains("eval_loss"));
  EXPECT_EQ(test::missing_monitor_keys(r4, {0, 1}), std::vector<std::string>{});
  // mix = min(1, step / 4) set before each step: the record of step s shows (s - 1) / 4.
  EXPECT_DOUBLE_EQ(rows[1]["aggregate/diff_attn_mix"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(r4["aggregate/diff_attn_mix"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(rows[5]["aggregate/diff_attn_mix"].get<double>(), 1.0);
  EXPECT_FALSE(rows[0].contains("layer_0/lambda1"));
  // A second run with the same seed gives identical losses.
  auto again = run_difftx({"train", config("run2", "").string()});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  auto rows2 = metrics(dir_->path() / "run2");
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i]["loss"], rows2[i]["loss"]) << i;
  // An output_dir holding checkpoints is refused without resume or --overwrite.
  auto busy = run_difftx({"train", cfg.string()});
  EXPECT_EQ(busy.exit_code, 2);
  EXPECT_NE(busy.err.find("--overwrite"), std::string::npos) << busy.err;
}

TEST_F(TrainCliTest, ResumeContinuesExactly) {
  const fs::path cfg = config("full", "");
  ASSERT_EQ(run_difftx({"train", cfg.string()}).exit_code, 0);
  auto full = metrics(dir_->path() / "full");
  // The same run, interrupted after step 6 (its checkpoint-6), then resumed.
  const fs::path part = dir_->path() / "part";
  fs::create_directories(part);
  fs::copy(dir_->path() / "full" / "checkpoint-6", part / "checkpoint-6", fs::copy_options::recursive);
  std::ofstream(part / "metrics.jsonl") << test::read_text(dir_->path() / "full" / "metrics.jsonl");
  const fs::path cfg2 = config("part", "");
  auto r = run_difftx({"train", cfg2.string(), "--resume-from-checkpoint", (part / "checkpoint-6").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = ordered_json::parse(r.out);
  EXPECT_EQ(summary["first_step"], 6);
  EXPECT_EQ(summary["steps"], full.back()["step"]);
  auto resumed = metrics(part);
  ASSERT_EQ(resumed.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) {
    EXPECT_EQ(resumed[i]["loss"], full[i]["loss"]) << "step " << i + 1 << ": bit-identical";
    EXPECT_EQ(resumed[i]["grad_norm"], full[i]["grad_norm"]) << i;
  }
  // Resuming a checkpoint at or past the run's last step would train nothing and put the older
  // weights in place of the final model (a trial's find): refused, and the run is untouched.
  const std::string final_model = test::read_text(part / "model.safetensors");
  const std::string final_metrics = test::read_text(part / "metrics.jsonl");
  auto done = run_difftx({"train", cfg2.string(), "--resume-from-checkpoint", (part / "checkpoint-6").string(),
                          "--max-steps", "6"});
  EXPECT_EQ(done.exit_code, 2);
  EXPECT_NE(done.err.find("the checkpoint is at step 6, and this run ends at step 6"), std::string::npos) << done.err;
  EXPECT_EQ(test::read_text(part / "model.safetensors"), final_model);
  EXPECT_EQ(test::read_text(part / "metrics.jsonl"), final_metrics);
  // A trainer state whose counters disagree (hand-edited: the seek would spin through epochs).
  const fs::path edited = dir_->path() / "edited" / "checkpoint-6";
  fs::create_directories(edited.parent_path());
  fs::copy(part / "checkpoint-6", edited, fs::copy_options::recursive);
  for (auto [key, value] : {std::pair{"micro_batches", int64_t{99999999999}}, {"global_step", int64_t{-5}}}) {
    ordered_json state = json_read_file(part / "checkpoint-6" / "trainer_state.json");
    state[key] = value;
    json_write_file(edited / "trainer_state.json", state);
    auto bad = run_difftx({"train", config("edited", "").string(), "--resume-from-checkpoint", edited.string()});
    EXPECT_EQ(bad.exit_code, 2) << key;
    EXPECT_NE(bad.err.find("malformed trainer state"), std::string::npos) << bad.err;
  }
  // num_epochs so large that the step count would wrap.
  auto epochs = run_difftx({"train", config("epochs", "max_steps: 0\nnum_epochs: 1e300").string()});
  EXPECT_EQ(epochs.exit_code, 2);
  EXPECT_NE(epochs.err.find("at most 1e12 (set max_steps or fewer num_epochs)"), std::string::npos) << epochs.err;
  EXPECT_FALSE(fs::exists(dir_->path() / "epochs"));
}

// gradient_checkpointing: true recomputes activations in the backward: every logged value (losses,
// gradient norms, the monitor's lambda and attention statistics, eval_loss) and the trained
// weights are bit-identical to the run that keeps them.
TEST_F(TrainCliTest, GradientCheckpointingChangesNoBit) {
  ASSERT_EQ(run_difftx({"train", config("kept", "").string()}).exit_code, 0);
  auto r = run_difftx({"train", config("recomputed", "gradient_checkpointing: true").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("activations are recomputed"), std::string::npos) << r.err;
  auto kept = metrics(dir_->path() / "kept"), recomputed = metrics(dir_->path() / "recomputed");
  ASSERT_EQ(recomputed.size(), kept.size());
  size_t monitor_records = 0;
  for (size_t i = 0; i < kept.size(); ++i) {
    ordered_json a = kept[i], b = recomputed[i];
    for (ordered_json* m : {&a, &b})
      for (const char* timing : {"train_runtime", "tokens_per_second", "samples_per_second", "window_seconds"})
        m->erase(timing);
    EXPECT_EQ(b, a) << "record " << i;
    monitor_records += a.contains("layer_0/attn1_mean");
  }
  EXPECT_GE(monitor_records, 3u);
  EXPECT_EQ(test::read_text(dir_->path() / "recomputed" / "model.safetensors"),
            test::read_text(dir_->path() / "kept" / "model.safetensors"));
}

// bf16: true (bf16 products, float32 master weights and AdamW state): the quickstart recipe's
// settings for 50 steps track the float32 run's losses, and resuming a bf16 run is exact.
TEST_F(TrainCliTest, Bf16ProductsTrackFloat32AndResumeExactly) {
  if (!cpu_has_native_bf16()) GTEST_SKIP() << "this CPU has no native bf16 products (bf16: true trains in float32)";
  const std::string recipe =
      "max_steps: 50\nlearning_rate: 0.0005\nlr_scheduler: cosine\nwarmup_steps: 5\nweight_decay: 0.1\n"
      "adam_beta2: 0.95\ngradient_accumulation_steps: 1\ndiff_attn_warmup_steps: 25\neval_steps: 50\nsave_steps: 25\n"
      "diff_attn_log_every: 50\n";
  ASSERT_EQ(run_difftx({"train", config("r32", recipe).string()}).exit_code, 0);
  auto r16 = run_difftx({"train", config("r16", recipe + "bf16: true\n").string()});
  ASSERT_EQ(r16.exit_code, 0) << r16.err;
  EXPECT_NE(r16.err.find("bf16: matrix products in bf16"), std::string::npos) << r16.err;
  const auto f32 = metrics(dir_->path() / "r32"), bf16 = metrics(dir_->path() / "r16");
  std::vector<double> l32, l16;
  for (const auto& row : f32)
    if (row.contains("loss")) l32.push_back(row["loss"].get<double>());
  for (const auto& row : bf16)
    if (row.contains("loss")) l16.push_back(row["loss"].get<double>());
  ASSERT_EQ(l32.size(), 50u);
  ASSERT_EQ(l16.size(), 50u);
  double worst = 0, differ = 0;
  for (size_t i = 0; i < 50; ++i) {
    worst = std::max(worst, std::abs(l16[i] - l32[i]) / l32[i]);
    differ += l16[i] != l32[i];
  }
  std::printf("[ bf16     ] 50 losses: max relative difference from float32 %.3g\n", worst);
  EXPECT_LE(worst, 1e-2) << "bf16 products drift from the float32 run";
  EXPECT_GE(differ, 40) << "bf16 products should round differently from float32";
  // Resume the bf16 run from its checkpoint-25: the same bits as the uninterrupted run.
  const fs::path part = dir_->path() / "r16part";
  fs::create_directories(part);
  fs::copy(dir_->path() / "r16" / "checkpoint-25", part / "checkpoint-25", fs::copy_options::recursive);
  std::ofstream(part / "metrics.jsonl") << test::read_text(dir_->path() / "r16" / "metrics.jsonl");
  auto r = run_difftx({"train", config("r16part", recipe + "bf16: true\n").string(), "--resume-from-checkpoint",
                       (part / "checkpoint-25").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto resumed = metrics(part);
  ASSERT_EQ(resumed.size(), bf16.size());
  for (size_t i = 0; i < bf16.size(); ++i)
    for (const char* key : {"loss", "grad_norm", "eval_loss", "layer_1/lambda_full"})
      EXPECT_EQ(resumed[i].value(key, -1.0), bf16[i].value(key, -1.0)) << key << ", record " << i;
}

TEST_F(TrainCliTest, DivergenceStopsWithTheLastGoodCheckpoint) {
  // A learning rate of 1e30 (no clipping) overflows the weights within a few steps
  const fs::path cfg = config("nan2", "learning_rate: 1.0e+30\nmax_grad_norm: 0\nsave_steps: 1\n");
  auto bad = run_difftx({"train", cfg.string()});
  EXPECT_EQ(bad.exit_code, 2) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("training diverged"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("checkpoint-"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir_->path() / "nan2" / "model.safetensors")) << "no final model from a diverged run";
}

TEST_F(TrainCliTest, AccumulationAcrossEpochBoundaries) {
  // A few micro-batches per epoch and 3 per step: several steps take micro-batches of two epochs
  // (each reshuffled). That once read freed memory (the epoch's batches were rebuilt under the
  // step's pointers); now every step trains on real tokens and the epoch counter follows.
  const std::string text = test::read_text(dir_->path() / "text.txt");
  test::write_text(dir_->path() / "small.txt", text.substr(0, text.find('\n', 1500) + 1));
  const fs::path cfg = config("epochs", "datasets: [{path: " + (dir_->path() / "small.txt").string() +
                                            ", type: completion}]\nval_set_size: 0\ngradient_accumulation_steps: 3\n"
                                            "max_steps: 10\nsave_steps: 100\n");
  auto r = run_difftx({"train", cfg.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = metrics(dir_->path() / "epochs");
  ASSERT_EQ(rows.size(), 10u);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_TRUE(std::isfinite(rows[i]["loss"].get<double>())) << i;
    if (i > 0) {
      EXPECT_GT(rows[i]["epoch"].get<double>(), rows[i - 1]["epoch"].get<double>()) << i;
    }
  }
  EXPECT_GT(rows.back()["epoch"].get<double>(), 2.0) << "the run went through several epochs";
}

TEST_F(TrainCliTest, CheckpointsAndTheTrainedModelKeepTheModelFiles) {
  // generation_config.json, chat_template.jinja, tokenizer.model ... travel with the model (one list
  // for convert, checkpoints and the trained model).
  const fs::path d = dir_->path();
  fs::create_directories(d / "diff-files");
  for (const auto& e : fs::directory_iterator(d / "diff")) fs::copy_file(e.path(), d / "diff-files" / e.path().filename());
  test::write_text(d / "diff-files" / "generation_config.json", "{\"do_sample\": false}\n");
  test::write_text(d / "diff-files" / "chat_template.jinja", "{{ messages }}\n");
  auto r = run_difftx({"train", config("files", "max_steps: 2\nsave_steps: 1\n", "diff-files").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const fs::path& dir : {d / "files", d / "files" / "checkpoint-1"})
    for (const char* name : {"generation_config.json", "chat_template.jinja", "tokenizer.json", "tokenizer_config.json"})
      EXPECT_EQ(test::read_text(dir / name), test::read_text(d / "diff-files" / name)) << dir << " " << name;
}

// Waits (up to `seconds`) until the run's metrics.jsonl holds `lines` lines.
bool wait_for_metrics(const fs::path& out, size_t lines, double seconds) {
  for (int i = 0; i < static_cast<int>(seconds * 20); ++i) {
    std::ifstream in(out / "metrics.jsonl");
    size_t n = 0;
    std::string line;
    while (std::getline(in, line)) n += !line.empty();
    if (n >= lines) return true;
    usleep(50000);
  }
  return false;
}

bool has_staging(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().find(".staging-") != std::string::npos) return true;
  return false;
}

TEST_F(TrainCliTest, CtrlCSavesACheckpointOnceAndStops) {
  const fs::path cfg = config("sigint", "max_steps: 100000\nsave_steps: 100000\neval_steps: 100000\n");
  const fs::path out = dir_->path() / "sigint";
  test::Child child = test::spawn_difftx({"train", cfg.string()}, dir_->path());
  ASSERT_GT(child.pid, 0);
  const bool started = wait_for_metrics(out, 3, 300);
  kill(child.pid, SIGINT);
  ASSERT_TRUE(started) << test::read_text(child.err);
  EXPECT_EQ(test::wait_child(child), 130) << test::read_text(child.err);
  const std::string err = test::read_text(child.err);
  EXPECT_NE(err.find("interrupted by signal 2 after step"), std::string::npos) << err;
  EXPECT_NE(err.find("resume with: difftx train"), std::string::npos) << err;
  // One checkpoint, at the step reached; it resumes.
  std::vector<fs::path> checkpoints;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind("checkpoint-", 0) == 0) checkpoints.push_back(e.path());
  ASSERT_EQ(checkpoints.size(), 1u) << err;
  const int64_t step = std::stoll(checkpoints[0].filename().string().substr(11));
  EXPECT_GE(step, 3);
  EXPECT_NE(err.find(fmt::format("after step {}/", step)), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out / "model.safetensors")) << "an interrupted run writes no final model";
  auto resumed = run_difftx({"train", cfg.string(), "--resume-from-checkpoint", checkpoints[0].string(), "--max-steps",
                             std::to_string(step + 1)});
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
}

// Ctrl-C during an evaluation stops it between micro-batches (an evaluation can take minutes): the
// step has no eval_loss, a checkpoint is saved and the run ends as interrupted. During the final
// evaluation the training is complete: the final model is saved, and the run still ends as
// interrupted. The whole dasher corpus with val_set_size 0.9 makes each evaluation take seconds.
TEST_F(TrainCliTest, CtrlCDuringAnEvaluationStopsIt) {
  const fs::path d = dir_->path();
  const auto run_until_eval = [&](const std::string& name, int max_steps, int eval_step) {
    const fs::path cfg = d / (name + ".yml");
    test::write_text(cfg, "base_model: " + (d / "diff").string() + "\ndatasets:\n  - path: " +
                              (fs::path(DIFFTX_SHARED_DIR) / "corpora/dasher-english-gb.txt").string() +
                              "\n    type: completion\nval_set_size: 0.9\nsequence_len: 128\nsample_packing: true\n"
                              "micro_batch_size: 4\nmax_steps: " + std::to_string(max_steps) +
                              "\nlearning_rate: 0.002\nlogging_steps: 1\neval_steps: " + std::to_string(eval_step) +
                              "\nsave_steps: 1000\noutput_dir: " + (d / name).string() + "\ndiff_attention: true\n");
    test::Child child = test::spawn_difftx({"train", cfg.string()}, d);
    EXPECT_GT(child.pid, 0);
    // The progress line of the step comes just before its evaluation.
    const std::string line = fmt::format("step {}/{} | epoch", eval_step, max_steps);
    bool evaluating = false;
    for (int i = 0; i < 6000 && !evaluating; ++i) {
      evaluating = test::read_text(child.err).find(line) != std::string::npos;
      if (!evaluating) usleep(50000);
    }
    usleep(200000);
    kill(child.pid, SIGINT);
    EXPECT_TRUE(evaluating) << test::read_text(child.err);
    EXPECT_EQ(test::wait_child(child), 130) << test::read_text(child.err);
    return test::read_text(child.err);
  };
  // Mid-run: stopped during step 2's evaluation, checkpoint-2 saved, no final model; it resumes.
  std::string err = run_until_eval("evalint", 6, 2);
  EXPECT_NE(err.find("signal 2 during the evaluation of step 2: stopped it after "), std::string::npos) << err;
  EXPECT_NE(err.find("interrupted by signal 2 after step 2/6"), std::string::npos) << err;
  EXPECT_EQ(err.find("step 2/6 | eval_loss"), std::string::npos) << "the evaluation ran to its end: " << err;
  const auto rows = metrics(d / "evalint");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_FALSE(rows[1].contains("eval_loss")) << rows[1].dump();
  EXPECT_TRUE(fs::exists(d / "evalint" / "checkpoint-2"));
  EXPECT_FALSE(fs::exists(d / "evalint" / "model.safetensors"));
  // The final evaluation: the final model is saved, and the exit still reports the signal.
  err = run_until_eval("evalfinal", 2, 2);
  EXPECT_NE(err.find("signal 2 during the evaluation of step 2: stopped it after "), std::string::npos) << err;
  EXPECT_NE(err.find("the training is complete and the final model is saved in " + (d / "evalfinal").string()),
            std::string::npos) << err;
  EXPECT_TRUE(fs::exists(d / "evalfinal" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(d / "evalfinal" / "config.json"));
}

TEST_F(TrainCliTest, KilledDuringCheckpointSavesTheNewestCompleteOneResumes) {
  // SIGKILL at random moments of checkpoint saves (a run saving every step, killed 0-20 ms after a
  // staging directory appears), 8 times (19 or 20 of 20 kills landed mid-save in CI's runs); each
  // time the newest complete checkpoint must load and resume, and what the kill left half-written
  // must be removed and reported.
  const fs::path out = dir_->path() / "kill";
  const fs::path cfg = config("kill", "max_steps: 100000\nsave_steps: 1\nsave_total_limit: 2\neval_steps: 100000\n"
                                      "logging_steps: 1\n");
  std::mt19937 rng(7);
  int left_incomplete = 0;
  constexpr int kTrials = 8;
  for (int trial = 0; trial < kTrials; ++trial) {
    fs::remove_all(out);
    test::Child child = test::spawn_difftx({"train", cfg.string()}, dir_->path());
    ASSERT_GT(child.pid, 0);
    // Step 2 logged: checkpoint-1 (saved after step 1's record) is complete.
    ASSERT_TRUE(wait_for_metrics(out, 2, 300)) << test::read_text(child.err);
    // Kill within 20 ms of a checkpoint's staging directory appearing: mid-save, or just after.
    for (int i = 0; i < 30000 && !has_staging(out); ++i) usleep(1000);
    usleep(std::uniform_int_distribution<int>(0, 20000)(rng));
    kill(child.pid, SIGKILL);
    ASSERT_EQ(test::wait_child(child), 128 + SIGKILL);
    int64_t newest = -1;
    fs::path newest_dir;
    bool incomplete = false;
    for (const auto& e : fs::directory_iterator(out)) {
      const std::string name = e.path().filename().string();
      if (name.find(".staging-") != std::string::npos || name.find(".tmp-") != std::string::npos ||
          name.find(".old-") != std::string::npos) {
        incomplete = true;
      } else if (name.rfind("checkpoint-", 0) == 0 && std::stoll(name.substr(11)) > newest) {
        newest = std::stoll(name.substr(11));
        newest_dir = e.path();
      }
    }
    left_incomplete += incomplete;
    ASSERT_GE(newest, 1) << "trial " << trial << ": checkpoint-1 was complete before the kill";
    auto r = run_difftx({"train", cfg.string(), "--resume-from-checkpoint", newest_dir.string(), "--max-steps",
                         std::to_string(newest + 1)});
    ASSERT_EQ(r.exit_code, 0) << "trial " << trial << ": " << r.err;
    if (incomplete) {
      EXPECT_NE(r.err.find("an incomplete output of a run that was killed"), std::string::npos) << r.err;
    }
    for (const auto& e : fs::directory_iterator(out))
      EXPECT_EQ(e.path().filename().string().find(".staging-"), std::string::npos) << e.path();
  }
  RecordProperty("killed_mid_save", left_incomplete);
  EXPECT_GE(left_incomplete, 1) << "no kill landed inside a save: the test did not test anything";
  std::printf("%d kills, %d of them left an incomplete checkpoint or file behind\n", kTrials, left_incomplete);
}

TEST_F(TrainCliTest, AFullDiskIsAClearErrorAndKeepsEarlierOutputs) {
  // A file-size limit of 4 MB (ulimit -f 4096) stands in for a full disk: the tiny model's
  // weights (8 MB in float32) cannot be written.
  const fs::path d = dir_->path();
  const std::string limit = "ulimit -f 4096; exec \"$0\" \"$@\"";
  auto limited = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-c", limit, DIFFTX_BINARY});
    return test::run_program("bash", args);
  };
  // convert: an earlier output directory survives a failed --overwrite.
  test::write_text(d / "full.yml", "base_model: " + (d / "base").string() + "\noutput_dir: " + (d / "full-conv").string() + "\n");
  ASSERT_EQ(run_difftx({"convert-diff-transformer", (d / "full.yml").string()}).exit_code, 0);
  const std::string before = test::read_text(d / "full-conv" / "model.safetensors");
  auto conv = limited({"convert-diff-transformer", (d / "full.yml").string(), "--overwrite", "--dtype", "f32"});
  EXPECT_EQ(conv.exit_code, 2) << conv.err;
  EXPECT_NE(conv.err.find("File too large"), std::string::npos) << conv.err;
  EXPECT_EQ(test::read_text(d / "full-conv" / "model.safetensors"), before);
  for (const auto& e : fs::directory_iterator(d))
    EXPECT_EQ(e.path().filename().string().find("full-conv."), std::string::npos) << e.path();
  // train: resuming under the limit fails at its first save; the checkpoint it resumed from is intact.
  const fs::path cfg = config("full-train", "max_steps: 4\nsave_steps: 2\n");
  ASSERT_EQ(run_difftx({"train", cfg.string(), "--max-steps", "2"}).exit_code, 0);
  const fs::path ck = d / "full-train" / "checkpoint-2";
  ASSERT_TRUE(fs::exists(ck / "trainer_state.json"));
  const std::string state = test::read_text(ck / "trainer_state.json");
  auto train = limited({"train", cfg.string(), "--resume-from-checkpoint", ck.string()});
  EXPECT_EQ(train.exit_code, 2) << train.err;
  EXPECT_NE(train.err.find("File too large"), std::string::npos) << train.err;
  EXPECT_EQ(test::read_text(ck / "trainer_state.json"), state);
  EXPECT_FALSE(fs::exists(d / "full-train" / "checkpoint-4"));
  for (const auto& e : fs::directory_iterator(d / "full-train"))
    EXPECT_EQ(e.path().filename().string().find(".staging-"), std::string::npos) << e.path();
  auto again = run_difftx({"train", cfg.string(), "--resume-from-checkpoint", ck.string()});
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST_F(TrainCliTest, TestDatasetsAreTheValidationSamples) {
  // 40 other lines of the corpus as axolotl's test_datasets: their samples (a line longer than
  // sequence_len gives several) are the validation samples, none is taken from the training data.
  const fs::path d = dir_->path();
  std::ifstream in(fs::path(DIFFTX_SHARED_DIR) / "corpora/dasher-english-gb.txt");
  std::string line, text;
  int kept = 0;
  for (int i = 0; i < 400 && std::getline(in, line); ++i)
    if (i >= 300 && kept < 40 && line.find_first_not_of(" \t") != std::string::npos) {
      text += line + "\n";
      ++kept;
    }
  test::write_text(d / "held_out.txt", text);
  const std::string held = "[{path: " + (d / "held_out.txt").string() + ", type: completion}]";
  auto r = run_difftx({"evaluate", config("td", "val_set_size: 0\ntest_datasets: " + held).string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ordered_json j = json_parse(r.out, "evaluate output");
  auto alone = run_difftx({"evaluate", config("tdn", "val_set_size: 0\ndatasets: " + held).string(), "--json"});
  ASSERT_EQ(alone.exit_code, 0) << alone.err;
  const ordered_json held_samples = json_parse(alone.out, "evaluate output")["train_samples"];
  EXPECT_GE(held_samples.get<int64_t>(), 40);
  EXPECT_EQ(j["eval_samples"], held_samples) << "the held-out file's samples, all of them";
  auto all = run_difftx({"evaluate", config("td0", "val_set_size: 0").string(), "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(j["train_samples"], json_parse(all.out, "evaluate output")["train_samples"]) << "the training split is whole";
  auto both = run_difftx({"evaluate", config("td2", "test_datasets: " + held).string()});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("\"test_datasets\" and \"val_set_size\""), std::string::npos) << both.err;
  auto bad = run_difftx({"evaluate", config("td3", "val_set_size: 0\ntest_datasets: {path: x}").string()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("\"test_datasets\" must be a list"), std::string::npos) << bad.err;
}

TEST_F(TrainCliTest, ConfigErrorsAndWarnings) {
  auto warn = run_difftx({"train", config("w", "tf32: true\nbf16: auto\nmystery_key: 3\ngradient_checkpointing: offload\n").string(),
                          "--max-steps", "1"});
  EXPECT_EQ(warn.exit_code, 0) << warn.err;
  EXPECT_NE(warn.err.find("activations are recomputed"), std::string::npos) << "axolotl's offload: " << warn.err;
  EXPECT_NE(warn.err.find("tf32 is ignored"), std::string::npos) << warn.err;
  EXPECT_NE(warn.err.find("mystery_key is unknown"), std::string::npos) << warn.err;
  // bf16: auto means bf16 products where the CPU has them natively (the log says so), float32 elsewhere.
  EXPECT_EQ(warn.err.find("bf16: matrix products in bf16") != std::string::npos, cpu_has_native_bf16()) << warn.err;
  for (auto [extra, part] : std::vector<std::pair<std::string, std::string>>{
           {"bf16: full\n", "\"full\" (bfloat16 weights and optimizer state) is not supported"},
           {"bf16: maybe\n", "\"bf16\" must be true, false or auto, got \"maybe\""},
           {"bf16: [true]\n", "\"bf16\" must be true, false or auto, got a list"},
           {"micro_batch_size: two\n", "\"micro_batch_size\""},
           {"adapter: lora\n", "lora_target_modules"},
           {"gradient_checkpointing: sometimes\n", "\"gradient_checkpointing\" must be true or false"},
           {"lr_scheduler: polynomial\n", "polynomial"},
           {"optimizer: sgd\n", "sgd"},
           {"learning_rate: .nan\n", "key \"learning_rate\" must be a finite number, got .nan"},
           {"num_epochs: .inf\n", "key \"num_epochs\" must be a finite number, got .inf"}}) {
    auto r = run_difftx({"train", config("e", extra).string()});
    EXPECT_EQ(r.exit_code, 2) << extra;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  }
  auto standard = run_difftx({"train", config("s", "", "base").string()});
  EXPECT_EQ(standard.exit_code, 2);
  EXPECT_NE(standard.err.find("convert it first"), std::string::npos) << standard.err;
  // An output_dir that is the base model, or holds it, would have it replaced or pruned: refused
  // before anything is written, and the base model is untouched.
  const fs::path d = dir_->path();
  const auto before = fs::last_write_time(d / "diff" / "model.safetensors");
  for (const std::string& out : {(d / "diff").string(), d.string()}) {
    auto r = run_difftx({"train", config("o", "output_dir: " + out + "\n").string(), "--overwrite"});
    EXPECT_EQ(r.exit_code, 2) << out;
    EXPECT_NE(r.err.find("is or holds base_model"), std::string::npos) << r.err;
  }
  EXPECT_EQ(fs::last_write_time(d / "diff" / "model.safetensors"), before);
  EXPECT_FALSE(fs::exists(d / "diff" / "checkpoint-1"));
  // A dataset inside output_dir, named like a run's file: --overwrite would have set it aside and
  // deleted it (a trial's find). Refused, and the file is kept.
  fs::create_directories(d / "data-out");
  fs::copy_file(d / "text.txt", d / "data-out" / "metrics.txt");
  const std::string inside = "datasets: [{path: " + (d / "data-out" / "metrics.txt").string() + ", type: completion}]\n" +
                             "output_dir: " + (d / "data-out").string() + "\n";
  auto data = run_difftx({"train", config("o", inside).string(), "--overwrite"});
  EXPECT_EQ(data.exit_code, 2);
  EXPECT_NE(data.err.find("is or holds the dataset " + (d / "data-out" / "metrics.txt").string()), std::string::npos)
      << data.err;
  EXPECT_EQ(test::read_text(d / "data-out" / "metrics.txt"), test::read_text(d / "text.txt"));
}

}  // namespace
}  // namespace difftx
