// Issue 16's hardening, end to end through the CLI: non-finite values computed from finite
// weights, output directories holding an earlier run, and the warnings for silent dead ends.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include <fmt/format.h>

#include "cli/train_fixture.h"
#include "io/json_file.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::run_difftx;
namespace fs = std::filesystem;

class HardeningCliTest : public test::TrainCliFixture {
 protected:
  // A copy of the converted model ("diff") after `edit`, with its tokenizer; every weight finite.
  static fs::path edited_model(const std::string& name, const std::function<void(Model&)>& edit) {
    Model m = model_load(dir_->path() / "diff");
    edit(m);
    const fs::path out = dir_->path() / name;
    fs::create_directories(out);
    model_save(m, out, DType::F32);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(dir_->path() / "diff" / f, out / f, fs::copy_options::overwrite_existing);
    return out;
  }
  static void fill(Model& m, const std::string& name, float value) {
    std::fill_n(m.param(name), m.table().at(name).numel, value);
  }
  static bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
};

TEST_F(HardeningCliTest, AnUpdateThatOverflowsLambdaOnTheLastStepStopsTraining) {
  // lambda_q1 · lambda_k1 = lambda_q2 · lambda_k2 = 88.4 in every layer: lambda = lambda_init, finite,
  // and so is every weight. One AdamW step moves the two pairs in opposite directions, so one
  // exponent passes 88.72 and lambda becomes infinite while every stored value stays finite.
  const fs::path hot = edited_model("hot", [](Model& m) {
    const float a = std::sqrt(88.4f / static_cast<float>(m.config().head_dim));
    for (int64_t l = 0; l < m.config().num_hidden_layers; ++l)
      for (const char* v : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"})
        fill(m, fmt::format("model.layers.{}.self_attn.{}", l, v), a);
  });
  auto r = run_difftx({"train", config("hot-run", "base_model: " + hot.string() +
                                                      "\nmax_steps: 1\nlearning_rate: 0.05\nwarmup_steps: 0\n"
                                                      "diff_attn_warmup_steps: 0\nsave_steps: 100\n")
                                    .string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(has(r.err, "step 1: training diverged (the update made a derived quantity non-finite: layer ")) << r.err;
  EXPECT_TRUE(has(r.err, "overflows float32 exp")) << r.err;
  EXPECT_FALSE(fs::exists(dir_->path() / "hot-run" / "model.safetensors")) << "no final model from a diverged run";
}

TEST_F(HardeningCliTest, InferenceRefusesNonFiniteLambdasAndLogits) {
  // A stored model whose lambda overflows is refused at load, naming the layer and tensors.
  const fs::path inf_lambda = edited_model("inf-lambda", [](Model& m) {
    fill(m, "model.layers.1.self_attn.lambda_q1", 3.0f);
    fill(m, "model.layers.1.self_attn.lambda_k1", 3.0f);
  });
  test::write_text(dir_->path() / "eval.txt", test::read_text(dir_->path() / "text.txt").substr(0, 2000));
  const std::string text = (dir_->path() / "eval.txt").string();
  const std::vector<std::vector<std::string>> commands = {
      {"forward", "", "--ids", "1,2,3"},
      {"eval", "", "--text", text, "--context", "64", "--stride", "32"},
      {"generate", "", "--prompt", "Hello", "--max-new-tokens", "3"},
      {"generate", "", "--prompt", "Hello", "--max-new-tokens", "3", "--temperature", "0.8"}};
  for (auto args : commands) {
    args[1] = inf_lambda.string();
    auto r = run_difftx(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.out << r.err;
    EXPECT_TRUE(has(r.err, "layer 1: lambda = exp(lambda_q1 · lambda_k1) - exp(lambda_q2 · lambda_k2) + lambda_init "
                           "is +inf"))
        << r.err;
    EXPECT_TRUE(has(r.err, "model.layers.1.self_attn.lambda_q1")) << r.err;
  }
  // Finite weights and lambdas whose forward pass overflows: a final norm of 1e38 makes every logit
  // NaN or infinite. Each command stops with exit 2 naming the first position.
  const fs::path overflow = edited_model("overflow", [](Model& m) { fill(m, "model.norm.weight", 1e38f); });
  for (auto args : commands) {
    args[1] = overflow.string();
    auto r = run_difftx(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.out << r.err;
    const std::string position = args[0] == "forward" ? "position 0 " : args[0] == "eval" ? "position 0 " : "position ";
    EXPECT_TRUE(has(r.err, "the logits at " + position)) << r.err;
    EXPECT_TRUE(has(r.err, "activations overflowed float32")) << r.err;
  }
  auto gen = run_difftx({"generate", overflow.string(), "--prompt", "Hello", "--max-new-tokens", "3"});
  EXPECT_EQ(gen.out, "Hello\n") << "nothing generated from NaN logits; the error starts on its own line";
  // evaluate (a training config) names the micro-batch.
  auto ev = run_difftx({"evaluate", config("ev-overflow", "base_model: " + overflow.string()).string()});
  EXPECT_EQ(ev.exit_code, 2) << ev.err;
  EXPECT_TRUE(has(ev.err, "the loss of micro-batch 1 of ")) << ev.err;
  EXPECT_TRUE(has(ev.err, " of the training split is ")) << ev.err;
}

TEST_F(HardeningCliTest, AnOutputDirWithAnEarlierRunIsRefusedAndOverwriteSetsItAside) {
  const fs::path out = dir_->path() / "er";
  const std::string keys = "max_steps: 2\nsave_steps: 100\neval_steps: 100\n";
  ASSERT_EQ(run_difftx({"train", config("er", keys).string()}).exit_code, 0);
  ASSERT_TRUE(fs::exists(out / "model.safetensors"));
  // A finished run whose checkpoints were deleted is still an earlier run.
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().starts_with("checkpoint-")) fs::remove_all(e.path());
  auto again = run_difftx({"train", config("er", keys).string()});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_TRUE(has(again.err, "holds the files of an earlier run (config.json, metrics.jsonl, model.safetensors"))
      << again.err;
  EXPECT_TRUE(has(again.err, "--overwrite")) << again.err;
  const std::string model_bytes = test::read_text(out / "model.safetensors");
  // --overwrite with a run that diverges before saving anything: the earlier run is kept aside.
  // (A rate of 1e38 without warm-up overflows float32 in the first update in every build; a smaller
  // one leaves huge finite weights whose lambda is NaN or finite depending on FMA contraction.)
  auto diverged = run_difftx(
      {"train", config("er", keys + "learning_rate: 1.0e+38\nmax_grad_norm: 0\nwarmup_steps: 0\n").string(), "--overwrite"});
  EXPECT_EQ(diverged.exit_code, 2) << diverged.err;
  EXPECT_TRUE(has(diverged.err, "training diverged")) << diverged.err;
  EXPECT_TRUE(has(diverged.err, "The earlier run replaced by --overwrite is kept in " + (out / ".overwritten-run").string()))
      << diverged.err;
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));
  EXPECT_EQ(test::read_text(out / ".overwritten-run" / "model.safetensors"), model_bytes);
  EXPECT_TRUE(fs::exists(out / ".overwritten-run" / "metrics.jsonl"));
  // Without --overwrite the set-aside run is named; with it, the new run replaces it once it saves.
  auto refused = run_difftx({"train", config("er", keys).string()});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_TRUE(has(refused.err, ".overwritten-run, an earlier run set aside by an --overwrite")) << refused.err;
  auto replaced = run_difftx({"train", config("er", keys).string(), "--overwrite"});
  ASSERT_EQ(replaced.exit_code, 0) << replaced.err;
  EXPECT_FALSE(fs::exists(out / ".overwritten-run"));
  auto rows = metrics(out);
  ASSERT_EQ(rows.size(), 2u) << "metrics of the new run only";
  EXPECT_EQ(rows[0]["step"], 1);
  EXPECT_EQ(rows[1]["step"], 2);
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_FALSE(e.path().filename().string().starts_with(".overwritten-run")) << e.path();
}

TEST_F(HardeningCliTest, ARunThatSavedBesideASetAsideRunIsNeverDeletedAsUncommitted) {
  // A set-aside run, resumed into output_dir (it saves there), then an --overwrite that diverges:
  // the resumed run is the earlier run now; it is set aside (the older one removed), not deleted.
  const fs::path out = dir_->path() / "sa";
  const std::string keys = "max_steps: 2\nsave_steps: 1\neval_steps: 100\n";
  const std::string diverging = keys + "learning_rate: 1.0e+38\nmax_grad_norm: 0\nwarmup_steps: 0\nsave_steps: 100\n";
  ASSERT_EQ(run_difftx({"train", config("sa", keys).string()}).exit_code, 0);
  EXPECT_EQ(run_difftx({"train", config("sa", diverging).string(), "--overwrite"}).exit_code, 2);
  ASSERT_TRUE(fs::exists(out / ".overwritten-run" / "checkpoint-1"));
  auto resumed = run_difftx({"train", config("sa", keys).string(), "--resume-from-checkpoint",
                             (out / ".overwritten-run" / "checkpoint-1").string()});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const std::string resumed_model = test::read_text(out / "model.safetensors");
  auto refused = run_difftx({"train", config("sa", keys).string()});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_TRUE(has(refused.err, "holds the files of an earlier run (checkpoint-2, config.json")) << refused.err;
  EXPECT_TRUE(has(refused.err, "a run set aside by an earlier --overwrite")) << refused.err;
  auto again = run_difftx({"train", config("sa", diverging).string(), "--overwrite"});
  EXPECT_EQ(again.exit_code, 2) << again.err;
  EXPECT_TRUE(has(again.err, "the run beside it has saved since it was set aside")) << again.err;
  EXPECT_EQ(test::read_text(out / ".overwritten-run" / "model.safetensors"), resumed_model);
  EXPECT_TRUE(fs::exists(out / ".overwritten-run" / "checkpoint-2" / "trainer_state.json"));
  // Tokenizer files alone (yours, in a fresh output_dir) are not overwritten silently either.
  fs::create_directories(dir_->path() / "tok-only");
  test::write_text(dir_->path() / "tok-only" / "tokenizer.json", "{}");
  auto tok = run_difftx({"train", config("tok-only", keys).string()});
  EXPECT_EQ(tok.exit_code, 2);
  EXPECT_TRUE(has(tok.err, "holds the files of an earlier run (tokenizer.json)")) << tok.err;
  EXPECT_EQ(test::read_text(dir_->path() / "tok-only" / "tokenizer.json"), "{}");
}

TEST_F(HardeningCliTest, DeadEndsAndSilentChoicesAreWarnedAbout) {
  const fs::path d = dir_->path();
  // --zero-init: the negative component can never train; convert and train say so.
  auto conv = run_difftx({"convert-diff-transformer", (d / "conv.yml").string(), "--zero-init", "--output-dir",
                          (d / "zero").string()});
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  EXPECT_TRUE(has(conv.err, "the negative (differential) component can never train: layers 0-1: lambda_q1")) << conv.err;
  EXPECT_TRUE(has(conv.err, "convert without --zero-init")) << conv.err;
  auto plain = run_difftx({"convert-diff-transformer", (d / "conv.yml").string(), "--output-dir", (d / "plain").string()});
  EXPECT_FALSE(has(plain.err, "can never train")) << plain.err;
  auto train = run_difftx({"train", config("zero-run", "base_model: " + (d / "zero").string()).string(), "--max-steps", "1"});
  EXPECT_EQ(train.exit_code, 0) << train.err;
  EXPECT_TRUE(has(train.err, "can never train")) << train.err;

  // A Mistral base with a sliding window: kept, with a warning about the Python layouts.
  fs::create_directories(d / "windowed");
  for (const auto& e : fs::directory_iterator(d / "base")) fs::copy_file(e.path(), d / "windowed" / e.path().filename());
  ordered_json config_json = json_read_file(d / "windowed" / "config.json");
  config_json["sliding_window"] = 16;
  config_json["max_position_embeddings"] = 40;  // shorter than the samples below
  json_write_file(d / "windowed" / "config.json", config_json);
  test::write_text(d / "windowed.yml", "base_model: " + (d / "windowed").string() + "\noutput_dir: " +
                                           (d / "windowed-diff").string() + "\n");
  auto windowed = run_difftx({"convert-diff-transformer", (d / "windowed.yml").string()});
  ASSERT_EQ(windowed.exit_code, 0) << windowed.err;
  EXPECT_TRUE(has(windowed.err, "sliding_window 16 is kept")) << windowed.err;
  EXPECT_TRUE(has(windowed.err, "ignore sliding_window")) << windowed.err;
  // Training samples longer than max_position_embeddings (sequence_len 64 > 40).
  auto longer = run_difftx({"train", config("long-run", "base_model: " + (d / "windowed-diff").string()).string(),
                            "--max-steps", "1"});
  EXPECT_EQ(longer.exit_code, 0) << longer.err;
  EXPECT_TRUE(has(longer.err, "are longer than the model's max_position_embeddings (40; the longest has ")) << longer.err;

  // attn_implementation is axolotl's current key: known and ignored, not unknown.
  auto attn = run_difftx(
      {"train", config("attn", "attn_implementation: flash_attention_2\n").string(), "--max-steps", "1"});
  EXPECT_EQ(attn.exit_code, 0) << attn.err;
  EXPECT_TRUE(has(attn.err, "config key attn_implementation is ignored")) << attn.err;
  EXPECT_FALSE(has(attn.err, "unknown")) << attn.err;

  // A base_model that is neither a local directory nor downloadable says both, and where it looked.
  auto hub = run_difftx({"train", config("hub", "base_model: m/llama").string()});
  EXPECT_EQ(hub.exit_code, 2);
  EXPECT_TRUE(has(hub.err, "is not a local directory")) << hub.err;
  EXPECT_TRUE(has(hub.err, "relative paths are taken from the current directory " + fs::current_path().string()))
      << hub.err;
  EXPECT_TRUE(has(hub.err, "huggingface-cli download m/llama")) << hub.err;
  // An absolute path that does not exist: said plainly, without the relative-path hint.
  const std::string absent = (d / "no-such-model").string();
  auto gone = run_difftx({"train", config("gone", "base_model: " + absent).string()});
  EXPECT_EQ(gone.exit_code, 2);
  EXPECT_TRUE(has(gone.err, "base_model \"" + absent + "\" does not exist\n")) << gone.err;
  // A checkpoint directory that does not exist is named as such (not "not a complete checkpoint").
  auto no_ckpt = run_difftx({"train", config("no-ckpt", "").string(), "--resume-from-checkpoint",
                             (d / "checkpoint-99").string()});
  EXPECT_EQ(no_ckpt.exit_code, 2);
  EXPECT_TRUE(has(no_ckpt.err, (d / "checkpoint-99").string() + ": the checkpoint to resume from does not exist"))
      << no_ckpt.err;
}

}  // namespace
}  // namespace difftx
