// `mpirun -np 2 difftx train`: data-parallel ranks over MPI, as CI runs them (loopback, one
// machine, --oversubscribe). Two ranks with micro-batch B match one process accumulating two
// micro-batches of B (the same global batch); resumes are exact; ranks that disagree or fail stop
// every rank with one clear error and write nothing; a killed rank leaves a resumable checkpoint;
// `evaluate` shares its micro-batches out over the ranks.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cli/train_fixture.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;
using test::run_difftx;

// mpirun from the environment (Debian's openmpi-bin), as root in CI's containers too.
std::vector<std::string> mpirun_args(int np) {
  return {"--allow-run-as-root", "--oversubscribe", "-np", std::to_string(np)};
}

test::RunResult mpirun(int np, const std::vector<std::string>& args) {
  std::vector<std::string> a = mpirun_args(np);
  a.push_back(test::difftx_binary());
  a.insert(a.end(), args.begin(), args.end());
  return test::run_program("timeout", [&] {
    std::vector<std::string> t = {"300", "mpirun"};  // a hang fails the test instead of stalling CI
    t.insert(t.end(), a.begin(), a.end());
    return t;
  }());
}

// How often `part` occurs in `text`.
size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t p = text.find(part); p != std::string::npos; p = text.find(part, p + 1)) ++n;
  return n;
}

// The largest |a - b| over all parameters of two saved models of the same layout.
double max_weight_difference(const fs::path& a, const fs::path& b) {
  const Model ma = model_load(a), mb = model_load(b);
  const auto wa = ma.weights(), wb = mb.weights();
  EXPECT_EQ(wa.size(), wb.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(wa.size(), wb.size()); ++i) worst = std::max(worst, std::fabs(double(wa[i]) - wb[i]));
  return worst;
}

class MpiTrainCliTest : public test::TrainCliFixture {
 protected:
  // Under the sanitizers (scripts/test.sh --sanitize), LeakSanitizer must see through Open MPI's
  // own allocations to suppress them (tests/lsan.supp): full stacks (the libraries have no
  // frame pointers) and components kept loaded after MPI_Finalize. mpirun passes the environment
  // on to the ranks; a build without sanitizers ignores it.
  void SetUp() override {
    const char* asan = std::getenv("ASAN_OPTIONS");
    const std::string options = asan != nullptr ? asan : "";
    if (options.find("fast_unwind_on_malloc") == std::string::npos)
      setenv("ASAN_OPTIONS", (options + (options.empty() ? "" : ":") + "fast_unwind_on_malloc=0").c_str(), 1);
    if (std::getenv("LSAN_OPTIONS") == nullptr)
      setenv("LSAN_OPTIONS", ("suppressions=" + (test::source_dir() / "tests/lsan.supp").string()).c_str(), 1);
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
  }
  // 10 steps, a checkpoint every 5, every step logged; `ga` micro-batches of 2 per rank and step.
  fs::path run_config(const std::string& name, int ga, const std::string& extra = "") {
    return config(name, fmt::format("gradient_accumulation_steps: {}\nmax_steps: 10\nsave_steps: 5\nlearning_rate: 0.0001\n"
                                    "save_total_limit: 0\neval_steps: 5\n{}",
                                    ga, extra));
  }
  fs::path out(const std::string& name) const { return dir_->path() / name; }
};

TEST_F(MpiTrainCliTest, TwoRanksMatchOneProcessWithTheSameGlobalBatch) {
  auto one = run_difftx({"train", run_config("one", 2).string()});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = mpirun(2, {"train", run_config("two", 1).string(), "--json"});
  ASSERT_EQ(two.exit_code, 0) << two.err;
  // Rank 0 alone reports and writes: one summary, one progress line per step.
  const auto summary = json_parse(two.out, "train --json");
  EXPECT_EQ(summary["world_size"], 2);
  EXPECT_EQ(summary["steps"], 10);
  size_t lines = 0;
  for (size_t p = two.err.find("step 10/10 | epoch"); p != std::string::npos; p = two.err.find("step 10/10 | epoch", p + 1))
    ++lines;
  EXPECT_EQ(lines, 1u) << two.err;
  EXPECT_NE(two.err.find("micro-batches of 2 x gradient_accumulation_steps 1 x 2 ranks"), std::string::npos) << two.err;
  const auto a = metrics(out("one")), b = metrics(out("two"));
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  double worst_loss = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double la = a[i]["loss"], lb = b[i]["loss"];
    worst_loss = std::max(worst_loss, std::fabs(la - lb) / std::fabs(la));
    EXPECT_NEAR(lb, la, 1e-6 * std::fabs(la)) << "step " << i + 1;
    EXPECT_EQ(a[i]["epoch"], b[i]["epoch"]) << "the same data position";
  }
  EXPECT_NEAR(b[4]["eval_loss"].get<double>(), a[4]["eval_loss"].get<double>(), 1e-6 * a[4]["eval_loss"].get<double>());
  EXPECT_NEAR(b[9]["eval_loss"].get<double>(), a[9]["eval_loss"].get<double>(), 1e-6 * a[9]["eval_loss"].get<double>());
  EXPECT_EQ(count_of(two.err, "| eval_loss "), 2u) << "both ranks evaluate, rank 0 prints:\n" << two.err;
  const double worst_weight = max_weight_difference(out("one"), out("two"));
  EXPECT_LE(worst_weight, 1e-5);
  std::printf("2 ranks x micro-batch 2 vs 1 process x accumulation 2, 10 steps: losses within %.2e relative, "
              "parameters within %.2e\n", worst_loss, worst_weight);
  // The checkpoint records the global batch it counted in.
  const auto state = json_read_file(out("two") / "checkpoint-5" / "trainer_state.json");
  EXPECT_EQ(state["world_size"], 2);
  EXPECT_EQ(state["gradient_accumulation_steps"], 1);

  // Resume 2 -> 2 from checkpoint-5: steps 6..10 and the final weights bit-identical (the ordered
  // sums make runs reproducible).
  fs::copy(out("two") / "checkpoint-5", dir_->path() / "ckpt-two-5", fs::copy_options::recursive);
  auto again = mpirun(2, {"train", run_config("two", 1).string(), "--resume-from-checkpoint",
                          (dir_->path() / "ckpt-two-5").string()});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto c = metrics(out("two"));
  ASSERT_EQ(c.size(), 10u);
  for (size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c[i]["loss"], b[i]["loss"]) << "step " << i + 1;
  EXPECT_EQ(max_weight_difference(out("two"), out("one")), worst_weight);

  // Resume 2 -> 1 with the same global batch (accumulation 2): the same losses as the 2-rank run.
  auto single = run_difftx({"train", run_config("single", 2).string(), "--resume-from-checkpoint",
                            (dir_->path() / "ckpt-two-5").string()});
  ASSERT_EQ(single.exit_code, 0) << single.err;
  const auto d = metrics(out("single"));  // a new output_dir: steps 6..10
  ASSERT_EQ(d.size(), 5u);
  for (size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i]["step"], b[i + 5]["step"]);
    EXPECT_NEAR(d[i]["loss"].get<double>(), b[i + 5]["loss"].get<double>(), 1e-6 * b[i + 5]["loss"].get<double>());
  }
  // ... and refused with another global batch, saying what would continue it exactly.
  auto other = run_difftx({"train", run_config("other", 1).string(), "--resume-from-checkpoint",
                           (dir_->path() / "ckpt-two-5").string()});
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("global batch of 2 micro-batches of 2"), std::string::npos) << other.err;
  EXPECT_NE(other.err.find("set gradient_accumulation_steps: 2"), std::string::npos) << other.err;
  EXPECT_FALSE(fs::exists(out("other") / "metrics.jsonl"));
}

// ZeRO-1 (axolotl's deepspeed: zero1.json): each rank keeps the AdamW moments of its shards; the
// training is the unsharded run's (the same gradient sums and element-wise updates; only the
// global norm's partial sums are added in another order), the checkpoints are the same files.
TEST_F(MpiTrainCliTest, Zero1ShardsTheOptimizerStateAndTrainsTheSame) {
  test::write_text(dir_->path() / "zero1.json", R"({"zero_optimization": {"stage": 1}, "bf16": {"enabled": "auto"}})");
  const std::string ds = "deepspeed: " + (dir_->path() / "zero1.json").string();
  auto plain = mpirun(2, {"train", run_config("dp", 1).string(), "--json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  auto zero = mpirun(2, {"train", run_config("zero", 1, ds).string(), "--json"});
  ASSERT_EQ(zero.exit_code, 0) << zero.err;
  EXPECT_NE(zero.err.find("ZeRO-1 (deepspeed stage 1): each of the 2 ranks keeps the AdamW moments of its shard"),
            std::string::npos) << zero.err;
  const auto a = metrics(out("dp")), b = metrics(out("zero"));
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(b[i]["loss"].get<double>(), a[i]["loss"].get<double>(), 1e-6 * a[i]["loss"].get<double>()) << i + 1;
    EXPECT_NEAR(b[i]["grad_norm"].get<double>(), a[i]["grad_norm"].get<double>(), 1e-6 * a[i]["grad_norm"].get<double>());
  }
  EXPECT_LE(max_weight_difference(out("dp"), out("zero")), 1e-5);
  // Less resident memory on rank 1 after training (the moments: 8 bytes per parameter, halved).
  // Rank 0 receives the whole moments for each checkpoint, and malloc keeps those pages.
  const auto pj = json_parse(plain.out, "train --json"), zj = json_parse(zero.out, "train --json");
  ASSERT_EQ(zj["rss_bytes"].size(), 2u);
  const Model m = model_load(out("dp"));
  const double half_moments = 8.0 * static_cast<double>(m.table().buffer_floats()) / 2;
  EXPECT_LT(zj["rss_bytes"][1].get<double>(), pj["rss_bytes"][1].get<double>() - 0.5 * half_moments)
      << zj.dump() << pj.dump();
  for (const auto* j : {&pj, &zj})  // the peak is never below the resident size measured before it
    for (size_t r = 0; r < 2; ++r)
      EXPECT_GE((*j)["peak_rss_bytes"][r].get<double>(), (*j)["rss_bytes"][r].get<double>()) << j->dump();
  // The checkpoint holds the whole moments: it resumes sharded (2 -> 2, bit-identical) and unsharded.
  fs::copy(out("zero") / "checkpoint-5", dir_->path() / "ckpt-zero-5", fs::copy_options::recursive);
  auto again = mpirun(2, {"train", run_config("zero", 1, ds).string(), "--resume-from-checkpoint",
                          (dir_->path() / "ckpt-zero-5").string()});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto c = metrics(out("zero"));
  ASSERT_EQ(c.size(), 10u);
  for (size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c[i]["loss"], b[i]["loss"]) << "step " << i + 1;
  auto unsharded = mpirun(2, {"train", run_config("unsharded", 1).string(), "--resume-from-checkpoint",
                              (dir_->path() / "ckpt-zero-5").string()});
  ASSERT_EQ(unsharded.exit_code, 0) << unsharded.err;
  const auto d = metrics(out("unsharded"));
  ASSERT_EQ(d.size(), 5u);
  for (size_t i = 0; i < d.size(); ++i)
    EXPECT_NEAR(d[i]["loss"].get<double>(), b[i + 5]["loss"].get<double>(), 1e-6 * b[i + 5]["loss"].get<double>());
}

// adapter: lora over ranks: the trained tensors' gradients are summed (and, with ZeRO-1, their AdamW
// state sharded) as a full run's are: 2 ranks give the losses and adapter of 1 process with the same
// global batch.
TEST_F(MpiTrainCliTest, LoraTrainsTheSameOverRanks) {
  test::write_text(dir_->path() / "zero1-lora.json", R"({"zero_optimization": {"stage": 1}})");
  const std::string lora = "adapter: lora\nlora_r: 4\nlora_alpha: 8\nlora_target_linear: true\n";
  auto one = run_difftx({"train", run_config("lora-one", 2, lora).string()});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = mpirun(2, {"train", run_config("lora-two", 1, lora + "deepspeed: " +
                                                        (dir_->path() / "zero1-lora.json").string()).string()});
  ASSERT_EQ(two.exit_code, 0) << two.err;
  const auto a = metrics(out("lora-one")), b = metrics(out("lora-two"));
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(b[i]["loss"].get<double>(), a[i]["loss"].get<double>(), 1e-6 * a[i]["loss"].get<double>()) << i + 1;
  SafetensorsFile fa(out("lora-one") / "adapter_model.safetensors"), fb(out("lora-two") / "adapter_model.safetensors");
  ASSERT_EQ(fa.tensors().size(), fb.tensors().size());
  double worst = 0;
  for (const TensorInfo& t : fa.tensors()) {
    std::vector<float> x(t.numel()), y(t.numel());
    fa.load_f32(t, x.data());
    fb.load_f32(*fb.find(t.name), y.data());
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, double(std::fabs(x[i] - y[i])));
  }
  EXPECT_LE(worst, 1e-5);
}

TEST_F(MpiTrainCliTest, DeepspeedKeyNamesTheZeroStage) {
  // Alone, stage 1 has nothing to shard and says so.
  test::write_text(dir_->path() / "ds1.json", R"({"zero_optimization": {"stage": 1}})");
  auto alone = run_difftx({"train", config("ds-alone", "deepspeed: " + (dir_->path() / "ds1.json").string()).string(),
                           "--max-steps", "1"});
  EXPECT_EQ(alone.exit_code, 0) << alone.err;
  EXPECT_NE(alone.err.find("one process keeps all of it"), std::string::npos) << alone.err;
  test::write_text(dir_->path() / "ds-auto.json", R"({"zero_optimization": {"stage": "auto"}})");
  for (auto [value, part] : std::vector<std::pair<std::string, std::string>>{
           {"deepspeed_configs/zero3.json", "ZeRO stage 3 (sharded gradients and parameters) is not supported"},
           {"deepspeed_configs/zero2.json", "ZeRO stage 2 (sharded gradients) is not supported"},
           {(dir_->path() / "none.json").string(), "none.json does not exist"},
           {(dir_->path() / "ds-auto.json").string(), "zero_optimization.stage must be a number"}}) {
    auto r = run_difftx({"evaluate", config("ds-bad", "deepspeed: " + value).string()});
    EXPECT_EQ(r.exit_code, 2) << value;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  }
}

// Two "machines": ranks in two network namespaces talking TCP over a veth pair
// (scripts/netns_hosts.sh), against the same run over shared memory: the ordered sums make the
// transport irrelevant, so the losses and weights are the same bits.
TEST_F(MpiTrainCliTest, TwoNetworkNamespacesGiveTheSameBitsAsSharedMemory) {
  const fs::path cfg_shm = run_config("shm", 1), cfg_tcp = run_config("tcp", 1);
  auto shm = mpirun(2, {"train", cfg_shm.string()});
  ASSERT_EQ(shm.exit_code, 0) << shm.err;
  auto tcp = test::run_program("timeout", {"300", (test::source_dir() / "scripts/netns_hosts.sh").string(), "-np", "2",
                                           test::difftx_binary(), "--threads", "1", "train", cfg_tcp.string()});
  if (tcp.exit_code == 77) GTEST_SKIP() << "no network namespaces here: " << tcp.err;
  ASSERT_EQ(tcp.exit_code, 0) << tcp.err;
  const auto a = metrics(out("shm")), b = metrics(out("tcp"));
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["loss"], b[i]["loss"]) << "step " << i + 1;
    EXPECT_EQ(a[i]["grad_norm"], b[i]["grad_norm"]) << "step " << i + 1;
  }
  EXPECT_EQ(max_weight_difference(out("shm"), out("tcp")), 0.0);
}

// mpirun's MPMD form gives each rank its own command line: rank 1 reads another file.
test::RunResult mpirun_two_configs(const fs::path& rank0, const fs::path& rank1, const std::string& command = "train") {
  std::vector<std::string> a = {"300", "mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "1",
                                test::difftx_binary(), command, rank0.string(), ":", "-np", "1",
                                test::difftx_binary(), command, rank1.string()};
  return test::run_program("timeout", a);
}

TEST_F(MpiTrainCliTest, RanksThatDisagreeOrFailStopWithOneErrorAndWriteNothing) {
  // Rank 1's config differs in one value (its own output_dir stays the same).
  const fs::path base = run_config("mismatch", 1);
  const fs::path changed = dir_->path() / "mismatch-rank1.yml";
  std::string text = test::read_text(base);
  text.replace(text.find("learning_rate: 0.0001"), 21, "learning_rate: 0.0003");
  test::write_text(changed, text);
  auto r = mpirun_two_configs(base, changed);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("the 2 ranks do not train the same thing: rank 1 differs from rank 0 in its config file. "),
            std::string::npos) << r.err;
  EXPECT_EQ(count_of(r.err, "error:"), 1u) << "rank 0 reports, rank 1 stops quietly:\n" << r.err;
  EXPECT_FALSE(fs::exists(out("mismatch"))) << "nothing written";

  // The same config, but another --max-steps on rank 1 (its schedule, and so its evaluations and
  // sums, would differ), or another subcommand: one error before anything is written.
  std::vector<std::string> steps = {"300", "mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "1",
                                    test::difftx_binary(), "train", base.string(), "--max-steps", "2", ":", "-np", "1",
                                    test::difftx_binary(), "train", base.string(), "--max-steps", "4"};
  auto s = test::run_program("timeout", steps);
  EXPECT_EQ(s.exit_code, 2) << s.err;
  EXPECT_NE(s.err.find("the 2 ranks do not train the same thing: rank 1 differs from rank 0 in its command (the "
                       "subcommand, --max-steps, --resume-from-checkpoint, --overwrite)"),
            std::string::npos) << s.err;
  EXPECT_EQ(count_of(s.err, "error:"), 1u) << s.err;
  EXPECT_FALSE(fs::exists(out("mismatch"))) << "nothing written";
  steps = {"300", "mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "1", test::difftx_binary(), "evaluate",
           base.string(), ":", "-np", "1", test::difftx_binary(), "train", base.string()};
  auto e = test::run_program("timeout", steps);
  EXPECT_EQ(e.exit_code, 2) << e.err;
  EXPECT_NE(e.err.find("the 2 ranks do not evaluate the same thing: rank 1 differs from rank 0 in its command"),
            std::string::npos) << e.err;
  EXPECT_EQ(count_of(e.err, "error:"), 1u) << e.err;
  EXPECT_FALSE(fs::exists(out("mismatch"))) << "nothing written";

  // Rank 1 cannot read its data: it names the file and its rank; every rank stops (no hang), rank 0
  // quietly, and no rank is aborted (it joins the sum the other ranks wait in).
  std::string missing = test::read_text(base);
  const std::string text_path = (dir_->path() / "text.txt").string();
  missing.replace(missing.find(text_path), text_path.size(), (dir_->path() / "no-such-text.txt").string());
  test::write_text(dir_->path() / "missing-rank1.yml", missing);
  const auto t0 = std::chrono::steady_clock::now();
  auto m = mpirun_two_configs(base, dir_->path() / "missing-rank1.yml");
  EXPECT_NE(m.exit_code, 0);
  EXPECT_NE(m.exit_code, 124) << "timed out: a rank hung";
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 120.0);
  EXPECT_NE(m.err.find("error: rank 1 of 2:"), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("no-such-text.txt"), std::string::npos) << m.err;
  EXPECT_EQ(count_of(m.err, "error:"), 1u) << m.err;
  EXPECT_EQ(m.err.find("MPI_ABORT"), std::string::npos) << "no rank aborted:\n" << m.err;
  EXPECT_FALSE(fs::exists(out("mismatch") / "metrics.jsonl"));
  EXPECT_FALSE(fs::exists(out("mismatch") / "checkpoint-5"));

  // Every rank fails alike (a config path that exists nowhere): one error, from rank 0, unnumbered.
  for (const char* command : {"train", "evaluate"}) {
    const std::string absent = (dir_->path() / "absent.yml").string();
    auto a = mpirun(2, {command, absent});
    EXPECT_EQ(a.exit_code, 2) << command << ":\n" << a.err;
    EXPECT_EQ(count_of(a.err, "error:"), 1u) << command << ":\n" << a.err;
    EXPECT_NE(a.err.find("error: " + absent), std::string::npos) << command << ":\n" << a.err;
    EXPECT_EQ(a.err.find("error: rank"), std::string::npos) << command << ":\n" << a.err;
    EXPECT_EQ(a.err.find("MPI_ABORT"), std::string::npos) << command << ":\n" << a.err;
  }
}

// `mpirun -np N difftx evaluate`: rank r evaluates micro-batches r, r + N, ...; one sum of the
// per-micro-batch losses gives the single process's mean, bit for bit (one thread per process, so
// each micro-batch's loss is computed alike), with N dividing the micro-batches or not.
TEST_F(MpiTrainCliTest, EvaluateSharesOutTheMicroBatchesAndGivesOneProcessesLosses) {
  const fs::path cfg = config("ev-ranks", "");
  auto alone = run_difftx({"--threads", "1", "evaluate", cfg.string(), "--json"});
  ASSERT_EQ(alone.exit_code, 0) << alone.err;
  const ordered_json one = json_parse(alone.out, "evaluate --json");
  EXPECT_EQ(one["world_size"], 1);
  ASSERT_TRUE(one["eval_loss"].is_number());
  for (int np : {2, 3}) {
    auto r = mpirun(np, {"--threads", "1", "evaluate", cfg.string(), "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const ordered_json j = json_parse(r.out, "evaluate --json");  // rank 0 alone prints
    EXPECT_EQ(j["world_size"], np);
    EXPECT_EQ(j["train_loss"].get<double>(), one["train_loss"].get<double>()) << np << " ranks";
    EXPECT_EQ(j["eval_loss"].get<double>(), one["eval_loss"].get<double>()) << np << " ranks";
    EXPECT_EQ(j["train_samples"], one["train_samples"]);
    EXPECT_EQ(j["eval_samples"], one["eval_samples"]);
  }
  auto text = mpirun(2, {"--threads", "1", "evaluate", cfg.string()});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(count_of(text.out, "train_loss "), 1u) << text.out;
  EXPECT_NE(text.out.find("samples/s, 2 ranks)"), std::string::npos) << text.out;

  // Ranks reading different configs stop before evaluating, with one error.
  const fs::path changed = dir_->path() / "ev-ranks-rank1.yml";
  std::string other = test::read_text(cfg);
  other.replace(other.find("seed: 5"), 7, "seed: 6");
  test::write_text(changed, other);
  auto mismatch = mpirun_two_configs(cfg, changed, "evaluate");
  EXPECT_EQ(mismatch.exit_code, 2) << mismatch.err;
  // The seed differs, and with it the validation split: both differences, in one sentence.
  EXPECT_NE(mismatch.err.find("the 2 ranks do not evaluate the same thing: rank 1 differs from rank 0 in its config "
                              "file and its training or validation samples (dataset files, tokenizer). Every rank"),
            std::string::npos)
      << mismatch.err;
  EXPECT_EQ(count_of(mismatch.err, "error:"), 1u) << mismatch.err;

  // Losses that overflow: every rank finds it in the summed losses and rank 0 reports the first
  // micro-batch, as one process does; no rank hangs or prints a second error.
  Model m = model_load(dir_->path() / "diff");
  std::fill_n(m.param("model.norm.weight"), m.table().at("model.norm.weight").numel, 1e38f);
  const fs::path overflow = dir_->path() / "ev-overflow-model";
  fs::create_directories(overflow);
  model_save(m, overflow, DType::F32);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(dir_->path() / "diff" / f, overflow / f, fs::copy_options::overwrite_existing);
  auto bad = mpirun(2, {"evaluate", config("ev-overflow", "base_model: " + overflow.string()).string()});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("error: the loss of micro-batch 1 of "), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find(" of the training split is "), std::string::npos) << bad.err;
  EXPECT_EQ(count_of(bad.err, "error:"), 1u) << bad.err;
}

// The pid of the rank whose command line holds `marker` and whose environment says it is `rank`.
int find_rank(const std::string& marker, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = test::read_text(e.path() / "cmdline"), env = test::read_text(e.path() / "environ");
    for (char& ch : cmdline) if (ch == '\0') ch = ' ';
    if (cmdline.find(test::difftx_binary()) == std::string::npos || cmdline.find(marker) == std::string::npos) continue;
    if (cmdline.find("mpirun") != std::string::npos || cmdline.find("timeout") == 0) continue;
    if (env.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') != std::string::npos) return std::stoi(name);
  }
  return -1;
}

TEST_F(MpiTrainCliTest, AKilledRankStopsTheRunAndTheLastCheckpointResumes) {
  const fs::path cfg = config("killed", "gradient_accumulation_steps: 1\nmax_steps: 400\nsave_steps: 2\n"
                                        "save_total_limit: 2\neval_steps: 1000");
  std::vector<std::string> a = mpirun_args(2);
  a.insert(a.end(), {test::difftx_binary(), "train", cfg.string()});
  test::Child child = test::spawn_program("mpirun", a, dir_->path());
  ASSERT_GT(child.pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(out("killed") / "checkpoint-4") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(out("killed") / "checkpoint-4")) << test::read_text(child.err);
  const int victim = find_rank(cfg.string(), 1);
  ASSERT_GT(victim, 0);
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  // mpirun notices and ends every rank: bounded, not a hang.
  int status = -1;
  const auto stop_by = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < stop_by) {
    if (waitpid(child.pid, &status, WNOHANG) == child.pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = -1;
  }
  if (status == -1) {
    kill(child.pid, SIGKILL);
    waitpid(child.pid, &status, 0);
    FAIL() << "mpirun still ran 60 s after a rank was killed:\n" << test::read_text(child.err);
  }
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a killed rank fails the run";
  EXPECT_EQ(find_rank(cfg.string(), 0), -1) << "rank 0 was stopped too";
  // The newest complete checkpoint resumes (a staging directory of a cut write is not one).
  fs::path newest;
  int64_t newest_step = -1;
  for (const auto& e : fs::directory_iterator(out("killed"))) {
    const std::string n = e.path().filename();
    if (n.rfind("checkpoint-", 0) == 0 && n.find_first_not_of("0123456789", 11) == std::string::npos &&
        std::stoll(n.substr(11)) > newest_step) {
      newest_step = std::stoll(n.substr(11));
      newest = e.path();
    }
  }
  ASSERT_GE(newest_step, 4);
  ASSERT_TRUE(fs::exists(newest / "trainer_state.json"));
  auto resumed = mpirun(2, {"train", cfg.string(), "--resume-from-checkpoint", newest.string(), "--max-steps",
                            std::to_string(newest_step + 1)});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find(fmt::format("step {}/{}", newest_step + 1, newest_step + 1)), std::string::npos)
      << resumed.err;
}

}  // namespace
}  // namespace difftx
