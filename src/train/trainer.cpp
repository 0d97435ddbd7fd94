#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>

#include "common/aligned_vector.h"
#include "common/interrupt.h"
#include "common/number_text.h"
#include "config/local_dir.h"
#include "io/atomic_file.h"
#include "io/model_files.h"
#include "model/attention/layout.h"
#include "model/model_dir.h"
#include "model/diff_checks.h"
#include "model/lora.h"
#include "model/trace.h"
#include "train/checkpoint.h"
#include "train/collective.h"
#include "train/data_stream.h"
#include "train/diff_monitor.h"
#include "train/grad_buckets.h"
#include "train/lora_run.h"
#include "train/metrics_log.h"
#include "train/tensorboard_log.h"
#include "train/rank_agreement.h"
#include "train/run_data.h"
#include "train/run_output.h"
#include "train/train_step.h"

namespace fs = std::filesystem;

namespace difftx {

namespace {

using Clock = std::chrono::steady_clock;

// This process's resident memory now (/proc/self/statm), 0 where unknown.
int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string duration_text(double s) {
  const int64_t t = static_cast<int64_t>(s + 0.5);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, t % 3600 / 60) : fmt::format("{}m{:02d}s", t / 60, t % 60);
}

// The run writes model files, checkpoints and metrics into output_dir and prunes or (with
// --overwrite) sets aside what is there: it must not hold what the run reads.
void check_inputs_outside(const TrainConfig& c, const fs::path& out_dir) {
  for (const auto& [key, value] : {std::pair{"base_model", c.base_model}, std::pair{"tokenizer_config", c.tokenizer_config}}) {
    if (value.empty()) continue;
    const fs::path input = resolve_local_dir(key, value, c.yaml_path);
    if (path_is_inside(input, out_dir))
      fail<ConfigError>("{}: output_dir {} is or holds {} {}; the trained model and checkpoints written there could "
                        "replace or delete it. Choose another output_dir",
                        c.yaml_path.string(), out_dir.string(), key, input.string());
  }
  // Datasets too: --overwrite would set a metrics.jsonl dataset aside with the earlier run and
  // delete it, and a run's own files would be read as data on the next start.
  for (const auto* list : {&c.datasets, &c.test_datasets})
    for (const DatasetSpec& d : *list)
      if (path_is_inside(d.path, out_dir))
        fail<ConfigError>("{}: output_dir {} is or holds the dataset {}; the model files, checkpoints and metrics "
                          "written there could replace or delete it, or be read as data. Choose another output_dir",
                          c.yaml_path.string(), out_dir.string(), d.path);
}

// The step counts of a run (the Hugging Face Trainer's arithmetic).
struct Schedule {
  int64_t steps_per_epoch = 0, total_steps = 0, warmup = 0, eval_every = 0, save_every = 0;
};

// world_size ranks take gradient_accumulation_steps micro-batches each per step.
Schedule make_schedule(const TrainConfig& c, const TrainRunOptions& o, int64_t epoch_micro_batches, bool has_val,
                       int world_size) {
  Schedule s;
  const int64_t per_step = c.gradient_accumulation_steps * world_size;
  s.steps_per_epoch = (epoch_micro_batches + per_step - 1) / per_step;
  const double epoch_steps = std::ceil(c.num_epochs * static_cast<double>(s.steps_per_epoch));
  if (c.max_steps <= 0 && !(epoch_steps <= 1e12))  // 1e300 or .inf epochs would wrap to negative steps
    fail<ConfigError>("{}: num_epochs {} x {} steps per epoch is {:.3g} steps; at most 1e12 (set max_steps or fewer "
                      "num_epochs)",
                      c.yaml_path.string(), c.num_epochs, s.steps_per_epoch, epoch_steps);
  s.total_steps = c.max_steps > 0 ? c.max_steps : static_cast<int64_t>(epoch_steps);
  if (o.max_steps) s.total_steps = *o.max_steps;
  s.warmup = c.warmup_steps >= 0 ? c.warmup_steps
                                 : static_cast<int64_t>(std::ceil(c.warmup_ratio * static_cast<double>(s.total_steps)));
  auto every = [&](int64_t steps, int64_t per_epoch) -> int64_t {
    if (steps > 0) return steps;
    if (per_epoch > 0) return std::max<int64_t>(1, s.steps_per_epoch / per_epoch);
    return s.steps_per_epoch;
  };
  s.eval_every = has_val ? every(c.eval_steps, c.evals_per_epoch) : 0;
  s.save_every = every(c.save_steps, c.saves_per_epoch);
  return s;
}

// The bf16 key (axolotl): true -> bf16 products with float32 accumulation (float32 weights, AdamW
// state, norms, softmax, lambda); auto -> the same where the CPU has native bf16 products. Places
// the model on the CPU backend of that precision and returns it.
MathMode place_for_training(Model& model, const TrainConfig& c) {
  MathMode math = MathMode::f32;
  if (c.bf16 != Bf16Mode::off && cpu_has_native_bf16()) math = MathMode::bf16;
  if (c.bf16 == Bf16Mode::on && math == MathMode::f32)
    spdlog::warn("{}: bf16: true, but oneDNN offers no native bf16 matrix products here (the CPU lacks AVX512_BF16 "
                 "and AMX, or DNNL_MAX_CPU_ISA hides them); training in float32",
                 c.yaml_path.string());
  model.place_on(cpu_backend(math));
  // Full fine-tuning: the matrices' bf16 copies, rounded once per update (autocast's weight cache).
  if (math == MathMode::bf16 && !model.lora_training() && !model.matrices_in_bf16()) model.keep_bf16_weight_copies();
  return math;
}

// The data position of a checkpoint counts global micro-batches; the same position gives the same
// next steps only with the same micro-batches per step (gradient_accumulation_steps x world_size,
// split any way) of the same size. Checkpoints from before data parallelism record neither
// (0): they are taken as they are, as before.
void check_same_global_batch(const TrainerState& saved, const TrainerState& now, const std::string& dir) {
  if (saved.gradient_accumulation_steps <= 0) return;
  const int64_t before = saved.gradient_accumulation_steps * saved.world_size;
  const int64_t after = now.gradient_accumulation_steps * now.world_size;
  if (saved.micro_batch_size == now.micro_batch_size && before == after) return;
  std::string hint;
  if (saved.micro_batch_size == now.micro_batch_size && before % now.world_size == 0)
    hint = fmt::format(" With {} process{}, set gradient_accumulation_steps: {} to continue exactly.", now.world_size,
                       now.world_size == 1 ? "" : "es", before / now.world_size);
  fail<RanksAgreeError>("{}: this checkpoint was trained with a global batch of {} micro-batches of {} per step "
                    "(gradient_accumulation_steps {} x {} process{}); this run takes {} micro-batches of {} "
                    "(gradient_accumulation_steps {} x {} process{}), which would continue on different data and "
                    "schedule.{}",
                    dir, before, saved.micro_batch_size, saved.gradient_accumulation_steps, saved.world_size,
                    saved.world_size == 1 ? "" : "es", after, now.micro_batch_size, now.gradient_accumulation_steps,
                    now.world_size, now.world_size == 1 ? "" : "es", hint);
}

// ZeRO-1 (deepspeed: zero1.json) with several ranks: this rank's shards of the AdamW state.
std::vector<FloatRange> zero1_shards(const TrainConfig& c, const Model& model, const Collective& collective) {
  if (c.zero_stage != 1 || collective.world_size() == 1) return {};
  return owned_shards(grad_buckets(model.trained_table(), model.config().num_hidden_layers), collective.rank(),
                      collective.world_size());
}

AdamWOptions adamw_options(const TrainConfig& c) {
  AdamWOptions ao;
  ao.learning_rate = c.learning_rate;
  ao.beta1 = c.adam_beta1;
  ao.beta2 = c.adam_beta2;
  ao.epsilon = c.adam_epsilon;
  ao.weight_decay = c.weight_decay;
  return ao;
}

// One training run: the state the loop carries between steps, and what each step logs and saves.
class Trainer {
 public:
  Trainer(const TrainConfig& c, const TrainRunOptions& o);
  TrainResult run();

 private:
  void log_start();
  ordered_json log_step(const StepResult& step, double lr);
  void evaluate(ordered_json& record);
  void save_checkpoint();
  void gather_moments(AlignedVector<float>& m, AlignedVector<float>& v);
  TrainingError diverged(const std::string& what) const;
  bool stop_requested();  // sets stop_signal_
  std::vector<int64_t> per_rank(int64_t value);
  int stop_signal_ = 0;
  std::string lora_line_;  // adapter: lora, what trains (set while the model loads)

  const TrainConfig& c_;
  const TrainRunOptions& o_;
  const Clock::time_point t_start_ = Clock::now();
  const std::string resume_;
  const fs::path out_dir_;
  SingleProcess single_;
  Collective& collective_;  // the data-parallel ranks (single_ without a launcher); before stream_
  const bool lead_;         // rank 0: the one that writes output_dir and prints
  Prepared data_;
  ModelDir base_dir_;  // base_model, opened once: the model (unless resuming) and the output dtype
  Model model_;
  MathMode math_;  // the products' precision (the bf16 key), the model placed on its CPU backend
  DataStream stream_;
  Schedule schedule_;
  AdamW optimizer_;
  TrainerState state_;
  MetricsLog metrics_;
  std::optional<TensorBoardLog> tensorboard_;  // use_tensorboard, on rank 0
  std::optional<EarlierRun> earlier_;
  std::optional<fs::path> last_checkpoint_;
  std::vector<int64_t> monitor_;
  std::vector<MicroBatch> val_batches_;
  AlignedVector<float> grads_;  // the layout of the weights, 64-byte aligned
  ForwardTrace trace_;
  TrainResult result_;
  int64_t first_step_ = 0;
  float diff_attn_mix_ = 1.0f;  // the warm-up mix of the current step (ForwardOptions)
  double eval_seconds_ = 0;
  // The logging window: the steps since the last logged one.
  double window_loss_ = 0;
  int64_t window_targets_ = 0, window_tokens_ = 0;
  double window_comm_ = 0, window_waited_ = 0;  // the collective's totals at the window's start
  Clock::time_point window_start_;
};

Trainer::Trainer(const TrainConfig& c, const TrainRunOptions& o)
    : c_(c),
      o_(o),
      resume_(o.resume_from_checkpoint.empty() ? c.resume_from_checkpoint : o.resume_from_checkpoint),
      out_dir_(c.output_dir),
      collective_(o.collective != nullptr ? *o.collective : single_),
      lead_(collective_.rank() == 0),
      data_((check_inputs_outside(c, c.output_dir), prepare_run_data(c))),
      base_dir_(data_.model_dir),
      model_([&] {
        if (!resume_.empty() && !fs::exists(resume_))
          fail<FileError>("{}: the checkpoint to resume from does not exist", resume_);
        if (!resume_.empty() && !fs::exists(fs::path(resume_) / kTrainerStateFile))
          fail<FileError>("{}: not a complete training checkpoint (no {})", resume_, kTrainerStateFile);
        if (!resume_.empty()) {  // a LoRA run's checkpoint holds its adapter, a full run's the model
          const bool adapter = fs::exists(fs::path(resume_) / "adapter_config.json");
          if (adapter && !c.lora)
            fail<ConfigError>("{}: this checkpoint holds a LoRA adapter; resume it with the run's config (adapter: "
                              "lora)", resume_);
          if (!adapter && c.lora)
            fail<ConfigError>("{}: this checkpoint holds a whole model (a full fine-tune's); adapter: lora cannot "
                              "resume it", resume_);
        }
        if (c.lora) {  // the frozen base model (bf16 with the bf16 key), and the adapters new or from the checkpoint
          Model m = base_dir_.load(/*matrices_in_bf16=*/c.bf16 != Bf16Mode::off);
          lora_line_ = lora_run_setup(m, c, resume_);
          return m;
        }
        return resume_.empty() ? base_dir_.load() : model_load(resume_);
      }()),
      math_(place_for_training(model_, c)),
      stream_(data_.train, c, data_.pad_id, collective_.rank(), collective_.world_size()),
      schedule_(make_schedule(c, o, stream_.epoch_size(), !data_.val.empty(), collective_.world_size())),
      optimizer_(model_.trained_table(), adamw_options(c), *model_.backend(), zero1_shards(c, model_, collective_)),
      metrics_(out_dir_ / "metrics.jsonl"),
      grads_(model_.trained_weights().size()) {
  if (c.diff_attention && !model_.config().is_differential())
    fail<ConfigError>("{}: diff_attention is true but base_model {} is a standard {} model; convert it first with "
                      "difftx convert-diff-transformer",
                      c.yaml_path.string(), c.base_model, model_.config().model_type);
  // The run's first collective operation (the errors above reach it through cli/train_ranks.h's
  // end_rank), before anything is written.
  check_ranks_agree(collective_, c, data_.train, data_.val, model_.trained_weights(), "train",
                    fmt::format("train --max-steps {} --resume-from-checkpoint {} --overwrite {}",
                                o.max_steps.value_or(0), o.resume_from_checkpoint, o.overwrite));
  if (const std::string stuck = stuck_negative_component(model_); !stuck.empty()) spdlog::warn("{}", stuck);
  if (layout_module(model_.config()).per_token_lambda() && c.diff_attn_warmup_steps > 0)
    spdlog::warn("{}: diff_attn_warmup_steps ramps diff-v2's lambda from 0, so a model converted with --init identity "
                 "(o_proj doubled for lambda = 1/2) does not compute the base model during the warm-up; DIFF V2 "
                 "needs no warm-up",
                 c.yaml_path.string());
  warn_beyond_max_positions(data_, model_.config().max_position_embeddings);
  if (math_ == MathMode::bf16)
    spdlog::info("bf16: matrix products in bf16 with float32 accumulation; {}, AdamW state, norms, softmax and "
                 "lambda in float32",
                 model_.lora_training() ? "frozen matrices in bf16; trained tensors"
                                        : "bf16 copies of the matrices made once per update; weights");
  if (optimizer_.sharded())
    spdlog::info("ZeRO-1 (deepspeed stage 1): each of the {} ranks keeps the AdamW moments of its shard, {:.0f} MB "
                 "here instead of {:.0f} MB",
                 collective_.world_size(), 8.0 * static_cast<double>(optimizer_.exp_avg().size()) / 1e6,
                 8.0 * static_cast<double>(model_.trained_table().buffer_floats()) / 1e6);
  else if (c.zero_stage == 1)
    spdlog::info("deepspeed: ZeRO stage 1 shards the AdamW state over ranks; one process keeps all of it");
  val_batches_ = make_micro_batches(data_.val, c, 0, data_.pad_id, /*shuffle=*/false);
  state_.total_steps = schedule_.total_steps;
  state_.steps_per_epoch = schedule_.steps_per_epoch;
  state_.warmup_steps = schedule_.warmup;
  state_.seed = c.seed;
  state_.world_size = collective_.world_size();
  state_.gradient_accumulation_steps = c.gradient_accumulation_steps;
  state_.micro_batch_size = c.micro_batch_size;
  // After the inputs were read: a bad config moves nothing. Rank 0 alone touches output_dir.
  if (resume_.empty() && lead_) earlier_.emplace(out_dir_, o.overwrite);
  if (lead_) {
    std::error_code ec;
    fs::create_directories(out_dir_, ec);
    if (ec) fail<FileError>("{}: cannot create the output directory: {}", out_dir_.string(), ec.message());
  }
  if (!resume_.empty()) {
    TrainerState saved = checkpoint_load_state(resume_, optimizer_, model_.trained_table());
    check_same_global_batch(saved, state_, resume_);
    // Every rank reads the same checkpoint (check_ranks_agree compared the command): alike.
    if (saved.global_step >= schedule_.total_steps)
      throw RanksAgreeError(fmt::format(
          "{}: the checkpoint is at step {}, and this run ends at step {} (max_steps, num_epochs or --max-steps): "
          "nothing to train, and the final model there would be replaced by this older one. Raise max_steps (or "
          "--max-steps) above {} to continue it",
          resume_, saved.global_step, schedule_.total_steps, saved.global_step));
    saved.total_steps = schedule_.total_steps;
    saved.world_size = state_.world_size;  // the next checkpoint records this run's shape
    saved.gradient_accumulation_steps = state_.gradient_accumulation_steps;
    saved.micro_batch_size = state_.micro_batch_size;
    state_ = saved;
    if (lead_) metrics_.keep_up_to(state_.global_step);
    spdlog::info("resuming from {} at step {}", resume_, state_.global_step);
  }
  stream_.seek(state_.micro_batches);
  first_step_ = state_.global_step;
  if (lead_ && c.use_tensorboard) {
    tensorboard_.emplace(out_dir_ / "runs", first_step_);
    spdlog::info("TensorBoard: {} (tensorboard --logdir {})", tensorboard_->path().string(), (out_dir_ / "runs").string());
  }
  if (model_.config().is_differential())
    monitor_ = monitored_layers(model_.config().num_hidden_layers, c.diff_attn_num_monitor_layers);
  for (const fs::path& p : lead_ ? remove_stale_entries(out_dir_) : std::vector<fs::path>{})
    spdlog::warn("removed {}: an incomplete output of a run that was killed (the complete checkpoints are kept)",
                 p.string());
  // Resumed: the checkpoint this run continues (a newer one in output_dir is from the run it forks
  // from, past the point where this run may fail).
  if (!resume_.empty()) last_checkpoint_ = fs::path(resume_);
  else if (const auto existing = checkpoint_list(out_dir_); !existing.empty()) last_checkpoint_ = existing.back();
  result_.output_dir = out_dir_;
  result_.total_steps = schedule_.total_steps;
  result_.train_samples = static_cast<int64_t>(data_.train.size());
  result_.val_samples = static_cast<int64_t>(data_.val.size());
}

void Trainer::log_start() {
  const bool differential = model_.config().is_differential();
  spdlog::info("{} training samples, {} validation; {} records read, {} dropped (longer than {} tokens), {} without a "
               "trained token",
               data_.train.size(), data_.val.size(), data_.report.records, data_.report.dropped_long, c_.sequence_len,
               data_.report.dropped_untrained);
  const int world = collective_.world_size();
  spdlog::info("{} steps ({} per epoch, {} micro-batches of {} x gradient_accumulation_steps {}{}), warm-up {} step{}{}",
               schedule_.total_steps, schedule_.steps_per_epoch, stream_.epoch_size(), c_.micro_batch_size,
               c_.gradient_accumulation_steps, world > 1 ? fmt::format(" x {} ranks", world) : "", schedule_.warmup,
               schedule_.warmup == 1 ? "" : "s",
               differential ? fmt::format(", monitoring layers {}", fmt::join(monitor_, ", ")) : "");
  if (!lora_line_.empty()) spdlog::info("{}", lora_line_);
  if (c_.gradient_checkpointing)
    spdlog::info("gradient_checkpointing: each layer keeps only its input; its activations are recomputed in the "
                 "backward pass");
}

// Divergence stops the run before anything non-finite reaches a checkpoint.
TrainingError Trainer::diverged(const std::string& what) const {
  return TrainingError(fmt::format(
      "step {}: training diverged ({}); training stopped. {}{}", state_.global_step + 1, what,
      last_checkpoint_ ? "The last good checkpoint is " + last_checkpoint_->string()
                       : std::string("No checkpoint was written yet."),
      earlier_ && !earlier_->aside().empty()
          ? " The earlier run replaced by --overwrite is kept in " + earlier_->aside().string()
          : std::string()));
}

// Every rank's `value`, in rank order (on every rank).
std::vector<int64_t> Trainer::per_rank(int64_t value) {
  std::vector<int64_t> all(static_cast<size_t>(collective_.world_size()), 0);
  all[static_cast<size_t>(collective_.rank())] = value;
  collective_.all_reduce_sum(all);
  return all;
}

// Ctrl-C / SIGTERM on any rank (mpirun forwards them to every rank, not necessarily between the same
// two steps): the ranks agree after each step, so that all stop after the same one.
bool Trainer::stop_requested() {
  stop_signal_ = interrupt_requested() ? interrupt_signal() : 0;
  if (collective_.world_size() == 1) return stop_signal_ != 0;
  std::vector<int64_t> signals(static_cast<size_t>(collective_.world_size()), 0);  // rank r's in slot r
  signals[static_cast<size_t>(collective_.rank())] = stop_signal_;
  collective_.all_reduce_sum(signals);
  for (int64_t sig : signals)
    if (sig != 0) return (stop_signal_ = static_cast<int>(sig)), true;
  return false;
}

// The record of a step that closes a logging window (and its progress line), else null.
ordered_json Trainer::log_step(const StepResult& step, double lr) {
  window_loss_ += step.loss_sum;
  window_targets_ += step.targets;
  window_tokens_ += step.tokens;
  const int64_t s = state_.global_step;
  if (s % c_.logging_steps != 0 && s != schedule_.total_steps) return {};
  const double secs = seconds_since(window_start_);
  const double tps = secs > 0 ? static_cast<double>(window_tokens_) / secs : 0.0;
  ordered_json record = {{"step", s}, {"epoch", state_.epoch},
                         {"loss", window_targets_ > 0 ? window_loss_ / static_cast<double>(window_targets_) : 0.0},
                         {"learning_rate", lr}, {"grad_norm", step.grad_norm}, {"tokens_per_second", tps}};
  if (collective_.world_size() > 1) {  // rank 0's time in the sums over the window, and the part waited for
    record["window_seconds"] = secs;
    record["communication_seconds"] = collective_.seconds_total() - window_comm_;
    record["communication_waited_seconds"] = collective_.seconds_waited() - window_waited_;
    window_comm_ = collective_.seconds_total();
    window_waited_ = collective_.seconds_waited();
  }
  result_.tokens += window_tokens_;
  const double elapsed = seconds_since(t_start_);
  if (o_.progress && lead_)
    fmt::print(stderr, "step {}/{} | epoch {:.2f} | loss {} | lr {:.2e} | grad {} | {:.0f} tok/s | ETA {}\n", s,
               schedule_.total_steps, state_.epoch, number_text(record["loss"].get<double>(), 4), lr,
               number_text(step.grad_norm, 3), tps,
               duration_text(elapsed / static_cast<double>(s - first_step_) *
                             static_cast<double>(schedule_.total_steps - s)));
  window_loss_ = 0;
  window_targets_ = 0;
  window_tokens_ = 0;
  window_start_ = Clock::now();
  return record;
}

// Every rank evaluates its share of the validation micro-batches; one sum gives all the same loss.
void Trainer::evaluate(ordered_json& record) {
  const int64_t s = state_.global_step;
  const auto t_eval = Clock::now();
  // With the step's warm-up mix, as the seed evaluates. Ctrl-C / SIGTERM stops it between
  // micro-batches: the step then has no eval_loss, and the stop after the step saves and ends the run.
  size_t done = 0;
  const std::optional<double> loss = mean_loss_over_ranks(model_, val_batches_, "validation split", {diff_attn_mix_},
                                                          collective_, /*interruptible=*/true, &done);
  eval_seconds_ += seconds_since(t_eval);
  if (!loss) {
    const int sig = interrupt_signal();  // 0 here when the signal reached another rank only
    spdlog::warn("{} during the evaluation of step {}: stopped it after {} of {} micro-batches; step {} has no "
                 "eval_loss",
                 sig != 0 ? fmt::format("signal {}", sig) : std::string("a signal on another rank"), s, done,
                 val_batches_.size(), s);
    return;
  }
  const double eval_loss = *loss;
  if (record.is_null()) record = {{"step", s}, {"epoch", state_.epoch}};
  record["eval_loss"] = eval_loss;
  result_.eval_loss = eval_loss;
  if (o_.progress && lead_) fmt::print(stderr, "step {}/{} | eval_loss {}\n", s, schedule_.total_steps,
                                     number_text(eval_loss, 4));
}

// ZeRO-1: rank 0 receives every rank's shards of the moments (into `m` and `v`, the table's layout).
void Trainer::gather_moments(AlignedVector<float>& m, AlignedVector<float>& v) {
  const uint64_t size = model_.trained_table().buffer_floats();
  if (lead_) {
    m.assign(size, 0.0f);
    v.assign(size, 0.0f);
  }
  uint64_t local = 0;  // the shards are packed in the order of the pieces (grad_buckets.h)
  for (const FloatRange& piece : grad_buckets(model_.trained_table(), model_.config().num_hidden_layers).in_order()) {
    const uint64_t n = piece.end - piece.begin;
    const auto [begin, end] = shard_of(n, collective_.rank(), collective_.world_size());
    auto whole = [&](AlignedVector<float>& x) { return lead_ ? std::span<float>(x.data() + piece.begin, n) : std::span<float>(); };
    collective_.start_gather_to_root({optimizer_.exp_avg().data() + local, end - begin}, whole(m), n);
    collective_.start_gather_to_root({optimizer_.exp_avg_sq().data() + local, end - begin}, whole(v), n);
    local += end - begin;
  }
  collective_.wait();
}

void Trainer::save_checkpoint() {
  AlignedVector<float> m, v;
  if (optimizer_.sharded()) gather_moments(m, v);
  if (!lead_) {  // every rank holds the same weights and AdamW state: rank 0's checkpoint is the run's
    last_checkpoint_ = out_dir_ / fmt::format("checkpoint-{}", state_.global_step);
    return;
  }
  last_checkpoint_ = checkpoint_save(out_dir_, model_, optimizer_.sharded() ? m : optimizer_.exp_avg(),
                                     optimizer_.sharded() ? v : optimizer_.exp_avg_sq(), state_, data_.tokenizer_dir);
  if (earlier_) earlier_->discard();  // the new run has committed an output
  checkpoint_prune(out_dir_, c_.save_total_limit);
}

TrainResult Trainer::run() {
  log_start();
  const bool differential = model_.config().is_differential();
  const auto t_loop = Clock::now();
  window_start_ = Clock::now();
  while (state_.global_step < schedule_.total_steps) {
    const int64_t step = state_.global_step;  // steps already taken
    if (differential && c_.diff_attn_warmup_steps > 0)
      diff_attn_mix_ = static_cast<float>(std::min(1.0, static_cast<double>(step) / c_.diff_attn_warmup_steps));
    std::vector<MicroBatch> micro_batches;
    for (int64_t k = 0; k < c_.gradient_accumulation_steps; ++k) micro_batches.push_back(stream_.next());
    const double lr = c_.learning_rate * lr_multiplier(c_.lr_scheduler, step, schedule_.warmup, schedule_.total_steps);
    StepOptions step_options{lr, c_.max_grad_norm, diff_attn_mix_, c_.gradient_checkpointing};
    if (c_.lora && c_.lora_dropout > 0)  // the step's masks: from the seed and the step, so a resumed run draws them again
      step_options.lora_dropout_seed = lora_pass_seed(c_.seed, -1, step);
    if (c_.gradient_checkpointing && differential && (step + 1) % c_.diff_attn_log_every == 0)
      step_options.kept_layers = monitor_;  // the monitor reads their activations after the step
    const StepResult r = train_step(model_, optimizer_, micro_batches, step_options, grads_, trace_, collective_);
    if (!r.diverged.empty()) throw diverged(r.diverged);
    state_.global_step += 1;
    state_.micro_batches = stream_.position();
    state_.epoch = stream_.epoch();
    if (step == first_step_) result_.first_loss = r.loss;
    result_.last_loss = r.loss;

    const int64_t s = state_.global_step;
    ordered_json record = log_step(r, lr);
    if (differential && s % c_.diff_attn_log_every == 0) {  // after the update, as the seed logs them
      if (record.is_null()) record = {{"step", s}, {"epoch", state_.epoch}};
      const ordered_json metrics = diff_attention_metrics(model_, trace_, monitor_, diff_attn_mix_, c_.diff_attn_warmup_steps > 0);
      for (const auto& [k, v] : metrics.items()) record[k] = v;
    }
    if (schedule_.eval_every > 0 && (s % schedule_.eval_every == 0 || s == schedule_.total_steps)) evaluate(record);
    if (!record.is_null()) {
      if (lead_) metrics_.append(record);
      if (tensorboard_) tensorboard_->append(record);
      state_.log_history.push_back(record);
    }
    const bool saved_now = s % schedule_.save_every == 0 && s < schedule_.total_steps;
    if (saved_now) {
      save_checkpoint();
      result_.checkpoints.push_back(last_checkpoint_->string());
    }
    if (stop_requested() && s < schedule_.total_steps) {
      // Ctrl-C / SIGTERM: keep this step's state (once) and stop; a second signal kills at once.
      if (!saved_now) save_checkpoint();
      throw Interrupted(fmt::format("interrupted by signal {} after step {}/{}; saved {}\nresume with: difftx train "
                                    "{} --resume-from-checkpoint {}",
                                    stop_signal_, s, schedule_.total_steps, last_checkpoint_->string(),
                                    c_.yaml_path.string(), last_checkpoint_->string()),
                        stop_signal_);
    }
  }
  result_.train_seconds = seconds_since(t_loop) - eval_seconds_;
  result_.rss_bytes = per_rank(resident_bytes());
  // The final model: the input's layout and dtype (the warm-up mix is training-only: inference runs with 1).
  save_checkpoint();
  result_.checkpoints.push_back(last_checkpoint_->string());
  if (lead_) {
    if (model_.lora_training())  // PEFT's files: adapter_config.json, adapter_model.safetensors
      lora_save(out_dir_, model_);
    else
      model_save(model_, out_dir_, base_dir_.stored_dtype());
    copy_model_files(data_.tokenizer_dir, out_dir_);
  }
  // A signal during the last step or its evaluation (every rank agreed on it after the step): the
  // training is complete and saved, and the run still ends as interrupted, never ignoring the signal.
  if (stop_signal_ != 0 && state_.global_step > first_step_)
    throw Interrupted(fmt::format("interrupted by signal {} during the last step ({}) or its evaluation; the training "
                                  "is complete and the final model is saved in {}",
                                  stop_signal_, state_.global_step, out_dir_.string()),
                      stop_signal_);
  result_.world_size = collective_.world_size();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  // ru_maxrss (Linux's hiwater_rss) is brought up to date only at some events (an unmap, exit), so
  // it can read below the resident size measured a moment ago: the peak is at least that.
  result_.peak_rss_bytes =
      per_rank(std::max(static_cast<int64_t>(usage.ru_maxrss) * 1024, resident_bytes()));
  result_.communication_seconds = collective_.seconds_total();
  result_.communication_waited_seconds = collective_.seconds_waited();
  result_.steps = state_.global_step;
  result_.first_step = first_step_;
  result_.tensorboard = tensorboard_.has_value();
  result_.seconds = seconds_since(t_start_);
  result_.tokens_per_second =
      result_.train_seconds > 0 ? static_cast<double>(result_.tokens) / result_.train_seconds : 0.0;
  return result_;
}

}  // namespace

TrainResult train_run(const TrainConfig& c, const TrainRunOptions& o) {
  for (const auto& k : c.ignored_keys) spdlog::info("config key {} is ignored by difftx", k);
  for (const auto& k : c.unknown_keys) spdlog::warn("config key {} is unknown to difftx; ignoring it", k);
  Trainer trainer(c, o);
  return trainer.run();
}

EvaluateRunResult evaluate_run(const TrainConfig& c, Collective* collective) {
  SingleProcess single;
  Collective& ranks = collective != nullptr ? *collective : single;
  const auto t0 = Clock::now();
  Prepared data = prepare_run_data(c);
  Model model = model_load(data.model_dir);
  if (c.lora && !c.lora_model_dir.empty()) {  // as axolotl evaluate: the adapter of lora_model_dir, unmerged
    model.attach_lora(lora_load(c.lora_model_dir, model));
    spdlog::info("evaluating with the LoRA adapter of lora_model_dir {}", c.lora_model_dir);
  } else if (c.lora) {
    spdlog::warn("{}: adapter: lora without lora_model_dir: evaluating the base model alone", c.yaml_path.string());
  }
  check_ranks_agree(ranks, c, data.train, data.val, model.weights(), "evaluate", "evaluate");
  EvaluateRunResult r;
  r.world_size = ranks.world_size();
  r.train_samples = static_cast<int64_t>(data.train.size());
  r.eval_samples = static_cast<int64_t>(data.val.size());
  auto loss_of = [&](const std::vector<Sample>& split, const char* name) {
    return *mean_loss_over_ranks(model, make_micro_batches(split, c, 0, data.pad_id, false), name, {}, ranks,
                                 /*interruptible=*/false);
  };
  r.train_loss = loss_of(data.train, "training split");
  if (!data.val.empty()) {
    r.eval_loss = loss_of(data.val, "validation split");
    r.has_eval = true;
  }
  r.seconds = seconds_since(t0);
  r.samples_per_second = static_cast<double>(r.train_samples + r.eval_samples) / r.seconds;
  return r;
}

}  // namespace difftx
