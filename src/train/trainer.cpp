#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <fstream>

#include "common/aligned_vector.h"
#include "common/interrupt.h"
#include "config/local_dir.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "io/model_files.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/finite_logits.h"
#include "model/checkpoint_io.h"
#include "model/diff_checks.h"
#include "model/trace.h"
#include "tokenizer/tokenizer.h"
#include "train/batches.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/diff_monitor.h"
#include "train/optimizer.h"
#include "train/run_output.h"

namespace fs = std::filesystem;

namespace difftx {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string duration_text(double s) {
  const int64_t t = static_cast<int64_t>(s + 0.5);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, t % 3600 / 60) : fmt::format("{}m{:02d}s", t / 60, t % 60);
}

// The pieces both commands need: tokenizer, model, samples.
struct Prepared {
  fs::path model_dir, tokenizer_dir;
  Tokenizer tokenizer;
  std::vector<Sample> train, val;
  DatasetReport report;
  int32_t pad_id = 0;
};

Prepared prepare(const TrainConfig& c) {
  fs::path model_dir = resolve_local_dir("base_model", c.base_model, c.yaml_path);
  fs::path tokenizer_dir =
      c.tokenizer_config.empty() ? model_dir : resolve_local_dir("tokenizer_config", c.tokenizer_config, c.yaml_path);
  Prepared p{model_dir, tokenizer_dir, Tokenizer::load(tokenizer_dir), {}, {}, {}, 0};
  for (const auto& [key, token] : c.special_tokens)
    if (!p.tokenizer.token_to_id(token))
      fail<ConfigError>("{}: special_tokens.{} \"{}\" is not in the vocabulary; adding tokens (and resizing the "
                        "embeddings) is not supported",
                        c.yaml_path.string(), key, token);
  p.train = load_samples(c, c.datasets, p.tokenizer, p.report);
  if (c.test_datasets.empty()) {
    p.val = split_validation(p.train, c.val_set_size, c.seed);
  } else {
    DatasetReport held_out;  // test_datasets: validation samples of their own, counted in the report
    p.val = load_samples(c, c.test_datasets, p.tokenizer, held_out);
    p.report.records += held_out.records;
    p.report.dropped_long += held_out.dropped_long;
    p.report.dropped_untrained += held_out.dropped_untrained;
    p.report.dropped.merge(held_out.dropped);
  }
  if (const std::string w = p.report.dropped.warning(); !w.empty()) spdlog::warn("datasets: {}", w);
  std::optional<int32_t> pad;
  for (const auto& [key, token] : c.special_tokens)
    if (key == "pad_token") pad = p.tokenizer.token_to_id(token);
  p.pad_id = pad.value_or(p.tokenizer.eos_id().value_or(0));
  return p;
}

// Each sample's positions count from 0 (packed samples too): a sample longer than the model's
// max_position_embeddings reaches positions it was never trained on.
void warn_beyond_max_positions(const Prepared& data, int64_t max_positions) {
  int64_t longer = 0;
  size_t longest = 0;
  for (const auto* set : {&data.train, &data.val})
    for (const Sample& s : *set) {
      longer += static_cast<int64_t>(s.ids.size()) > max_positions;
      longest = std::max(longest, s.ids.size());
    }
  if (longer > 0)
    spdlog::warn("{} sample(s) are longer than the model's max_position_embeddings ({}; the longest has {} tokens): "
                 "their positions past {} lie beyond what the model was trained for; lower sequence_len",
                 longer, max_positions, longest, max_positions - 1);
}

// Mean loss per target of a set of micro-batches (no gradients).
double mean_loss(const Model& model, const std::vector<MicroBatch>& batches, const char* split) {
  double total = 0;
  int64_t count = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    const MicroBatch& mb = batches[i];
    if (mb.target_count == 0) continue;
    const double loss = model.loss(mb.tokens, mb.targets);
    if (!std::isfinite(loss))
      fail<NumericError>("the loss of micro-batch {} of {} of the {} is {}. {}", i + 1, batches.size(), split,
                         number_text(loss), non_finite_cause(model));
    total += loss;
    count += mb.target_count;
  }
  return count > 0 ? total / static_cast<double>(count) : std::nan("");
}

// The name of the first parameter holding a NaN or infinity, or "" when all are finite.
std::string non_finite_parameter(const Model& model) {
  const std::span<const float> w = model.weights();
  for (const ParamSpec& p : model.table().params())
    for (uint64_t i = 0; i < p.numel; ++i)
      if (!std::isfinite(w[p.offset + i])) return p.name;
  return {};
}

// The training data in epoch order, reproducible from (seed, position).
class DataStream {
 public:
  DataStream(const std::vector<Sample>& samples, const TrainConfig& c, int32_t pad)
      : samples_(samples), config_(c), pad_(pad) {
    load(0);
  }
  // Skips to micro-batch `position` counted from the start of training.
  void seek(int64_t position) {
    load(0);
    while (position >= static_cast<int64_t>(batches_.size())) {
      position -= static_cast<int64_t>(batches_.size());
      load(epoch_ + 1);
    }
    index_ = position;
  }
  const MicroBatch& next() {
    if (index_ >= static_cast<int64_t>(batches_.size())) load(epoch_ + 1);
    return batches_[static_cast<size_t>(index_++)];
  }
  // Fractional epoch of the next micro-batch.
  double epoch() const { return static_cast<double>(epoch_) + static_cast<double>(index_) / batches_.size(); }
  int64_t epoch_size() const { return static_cast<int64_t>(batches_.size()); }

 private:
  void load(uint64_t epoch) {
    epoch_ = epoch;
    index_ = 0;
    batches_ = make_micro_batches(samples_, config_, epoch, pad_, /*shuffle=*/true);
  }
  const std::vector<Sample>& samples_;
  const TrainConfig& config_;
  int32_t pad_;
  uint64_t epoch_ = 0;
  int64_t index_ = 0;
  std::vector<MicroBatch> batches_;
};

void append_line(const fs::path& file, const ordered_json& record) {
  std::ofstream out(file, std::ios::app);
  out << record.dump() << "\n";
  if (!out) fail<FileError>("{}: cannot append metrics", file.string());
}

// Keeps the metrics of steps up to `step` (resuming discards what the interrupted run logged after
// its last checkpoint).
void truncate_metrics(const fs::path& file, int64_t step) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return;
  std::ifstream in(file);
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (json_parse(line, file.string()).value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const Error&) {  // a line cut by a crash
    }
  }
  AtomicFile out(file);
  out.write(kept.data(), kept.size());
  out.commit();
}

}  // namespace

TrainResult train_run(const TrainConfig& c, const TrainRunOptions& o) {
  const auto t_start = Clock::now();
  for (const auto& k : c.ignored_keys) spdlog::info("config key {} is ignored by difftx", k);
  for (const auto& k : c.unknown_keys) spdlog::warn("config key {} is unknown to difftx; ignoring it", k);

  const std::string resume = o.resume_from_checkpoint.empty() ? c.resume_from_checkpoint : o.resume_from_checkpoint;
  const fs::path out_dir = c.output_dir;
  std::error_code ec;
  // The run writes model files, checkpoints and metrics into output_dir and prunes or (with
  // --overwrite) removes checkpoints there: it must not hold what the run reads.
  for (const auto& [key, value] : {std::pair{"base_model", c.base_model}, std::pair{"tokenizer_config", c.tokenizer_config}}) {
    if (value.empty()) continue;
    const fs::path input = resolve_local_dir(key, value, c.yaml_path);
    if (path_is_inside(input, out_dir))
      fail<ConfigError>("{}: output_dir {} is or holds {} {}; the trained model and checkpoints written there could "
                        "replace or delete it. Choose another output_dir",
                        c.yaml_path.string(), out_dir.string(), key, input.string());
  }
  Prepared data = prepare(c);
  const fs::path resume_dir = resume.empty() ? fs::path() : fs::path(resume);
  if (!resume.empty() && !fs::exists(resume_dir / kTrainerStateFile))
    fail<FileError>("{}: not a complete training checkpoint (no {})", resume, kTrainerStateFile);
  Model model = model_load(resume.empty() ? data.model_dir : resume_dir);
  const DType final_dtype = checkpoint_dtype(data.model_dir, model_config_load(data.model_dir / "config.json"));
  if (c.diff_attention && !model.config().is_differential())
    fail<ConfigError>("{}: diff_attention is true but base_model {} is a standard {} model; convert it first with "
                      "difftx convert-diff-transformer",
                      c.yaml_path.string(), c.base_model, model.config().model_type);

  if (const std::string stuck = stuck_negative_component(model); !stuck.empty()) spdlog::warn("{}", stuck);
  warn_beyond_max_positions(data, model.config().max_position_embeddings);

  DataStream stream(data.train, c, data.pad_id);
  const int64_t steps_per_epoch = (stream.epoch_size() + c.gradient_accumulation_steps - 1) / c.gradient_accumulation_steps;
  int64_t total_steps = c.max_steps > 0 ? c.max_steps
                                        : static_cast<int64_t>(std::ceil(c.num_epochs * static_cast<double>(steps_per_epoch)));
  if (o.max_steps) total_steps = *o.max_steps;
  const int64_t warmup = c.warmup_steps >= 0 ? c.warmup_steps
                                             : static_cast<int64_t>(std::ceil(c.warmup_ratio * static_cast<double>(total_steps)));
  auto every = [&](int64_t steps, int64_t per_epoch) -> int64_t {
    if (steps > 0) return steps;
    if (per_epoch > 0) return std::max<int64_t>(1, steps_per_epoch / per_epoch);
    return steps_per_epoch;
  };
  const int64_t eval_every = data.val.empty() ? 0 : every(c.eval_steps, c.evals_per_epoch);
  const int64_t save_every = every(c.save_steps, c.saves_per_epoch);
  const std::vector<MicroBatch> val_batches =
      make_micro_batches(data.val, c, 0, data.pad_id, /*shuffle=*/false);

  AdamWOptions ao;
  ao.learning_rate = c.learning_rate;
  ao.beta1 = c.adam_beta1;
  ao.beta2 = c.adam_beta2;
  ao.epsilon = c.adam_epsilon;
  ao.weight_decay = c.weight_decay;
  AdamW optimizer(model.table(), ao);
  TrainerState state;
  state.total_steps = total_steps;
  state.steps_per_epoch = steps_per_epoch;
  state.warmup_steps = warmup;
  state.seed = c.seed;
  // Checked after the inputs were read (a bad config moves nothing aside).
  std::optional<EarlierRun> earlier;
  if (resume.empty()) earlier.emplace(out_dir, o.overwrite);
  fs::create_directories(out_dir, ec);
  if (ec) fail<FileError>("{}: cannot create the output directory: {}", out_dir.string(), ec.message());
  const fs::path metrics_file = out_dir / "metrics.jsonl";
  if (!resume.empty()) {
    state = checkpoint_load_state(resume_dir, optimizer, model.table());
    state.total_steps = total_steps;
    truncate_metrics(metrics_file, state.global_step);
    spdlog::info("resuming from {} at step {}", resume, state.global_step);
  }
  stream.seek(state.micro_batches);
  const int64_t first_step = state.global_step;
  const auto t_loop = Clock::now();
  double eval_seconds = 0;

  const bool differential = model.config().is_differential();
  const auto monitor = differential ? monitored_layers(model.config().num_hidden_layers, c.diff_attn_num_monitor_layers)
                                    : std::vector<int64_t>{};
  spdlog::info("{} training samples, {} validation; {} records read, {} dropped (longer than {} tokens), {} without a "
               "trained token",
               data.train.size(), data.val.size(), data.report.records, data.report.dropped_long, c.sequence_len,
               data.report.dropped_untrained);
  spdlog::info("{} steps ({} per epoch, {} micro-batches of {} x gradient_accumulation_steps {}), warm-up {} steps{}",
               total_steps, steps_per_epoch, stream.epoch_size(), c.micro_batch_size, c.gradient_accumulation_steps,
               warmup, differential ? fmt::format(", monitoring layers {}", fmt::join(monitor, ", ")) : "");

  TrainResult result;
  result.output_dir = out_dir;
  result.total_steps = total_steps;
  result.train_samples = static_cast<int64_t>(data.train.size());
  result.val_samples = static_cast<int64_t>(data.val.size());
  AlignedVector<float> grads(model.weights().size());  // the layout of the weights, 64-byte aligned
  ForwardTrace trace;
  double window_loss = 0;
  int64_t window_targets = 0, window_tokens = 0;
  auto window_start = Clock::now();
  std::optional<fs::path> last_checkpoint;
  for (const fs::path& p : remove_stale_entries(out_dir))
    spdlog::warn("removed {}: an incomplete output of a run that was killed (the complete checkpoints are kept)",
                 p.string());
  const auto existing = checkpoint_list(out_dir);
  if (!existing.empty()) last_checkpoint = existing.back();

  while (state.global_step < total_steps) {
    const int64_t step = state.global_step;  // steps already taken
    if (differential && c.diff_attn_warmup_steps > 0)
      model.set_diff_attn_mix(static_cast<float>(std::min(1.0, static_cast<double>(step) / c.diff_attn_warmup_steps)));
    // The step's micro-batches; the loss is averaged over all their targets (transformers'
    // num_items_in_batch), so accumulation does not change the gradient's scale.
    std::vector<const MicroBatch*> mbs;
    int64_t targets = 0;
    for (int64_t k = 0; k < c.gradient_accumulation_steps; ++k) {
      mbs.push_back(&stream.next());
      targets += mbs.back()->target_count;
    }
    std::fill(grads.begin(), grads.end(), 0.0f);
    double loss_sum = 0;
    for (const MicroBatch* mb : mbs) {
      if (mb->target_count == 0) continue;
      loss_sum += model.loss_and_backward(mb->tokens, mb->targets, 1.0f / static_cast<float>(targets), grads, trace);
      for (uint8_t m : mb->tokens.attention_mask) window_tokens += m;
    }
    const double step_loss = targets > 0 ? loss_sum / static_cast<double>(targets) : 0.0;
    // Divergence stops the run before anything non-finite reaches the weights or a checkpoint.
    const auto diverged = [&](const std::string& what) {
      return TrainingError(fmt::format("step {}: training diverged ({}); training stopped. {}{}", step + 1, what,
                                       last_checkpoint ? "The last good checkpoint is " + last_checkpoint->string()
                                                       : std::string("No checkpoint was written yet."),
                                       earlier && !earlier->aside().empty()
                                           ? " The earlier run replaced by --overwrite is kept in " +
                                                 earlier->aside().string()
                                           : std::string()));
    };
    if (!std::isfinite(step_loss)) throw diverged(fmt::format("the loss is {}", number_text(step_loss)));
    const double grad_norm = clip_grad_norm(model.table(), grads, c.max_grad_norm);
    if (!std::isfinite(grad_norm)) throw diverged(fmt::format("the gradient norm is {}", number_text(grad_norm)));
    const double lr = c.learning_rate * lr_multiplier(c.lr_scheduler, step, warmup, total_steps);
    optimizer.step(model.weights(), grads, lr);
    if (const std::string bad = non_finite_parameter(model); !bad.empty())
      throw diverged(fmt::format("the update made {} non-finite", bad));
    if (const std::string bad = non_finite_lambda(model); !bad.empty())
      throw diverged(fmt::format("the update made a derived quantity non-finite: {}", bad));
    state.global_step += 1;
    state.micro_batches += c.gradient_accumulation_steps;
    state.epoch = stream.epoch();
    if (step == first_step) result.first_loss = step_loss;
    result.last_loss = step_loss;
    window_loss += loss_sum;
    window_targets += targets;

    const int64_t s = state.global_step;
    ordered_json record;
    if (s % c.logging_steps == 0 || s == total_steps) {
      const double secs = seconds_since(window_start);
      const double tps = secs > 0 ? static_cast<double>(window_tokens) / secs : 0.0;
      record = {{"step", s}, {"epoch", state.epoch},
                {"loss", window_targets > 0 ? window_loss / static_cast<double>(window_targets) : 0.0},
                {"learning_rate", lr}, {"grad_norm", grad_norm}, {"tokens_per_second", tps}};
      result.tokens += window_tokens;
      const double elapsed = seconds_since(t_start);
      if (o.progress)
        fmt::print(stderr, "step {}/{} | epoch {:.2f} | loss {:.4f} | lr {:.2e} | grad {:.3f} | {:.0f} tok/s | ETA {}\n", s,
                   total_steps, state.epoch, record["loss"].get<double>(), lr, grad_norm, tps,
                   duration_text(elapsed / static_cast<double>(s - first_step) * static_cast<double>(total_steps - s)));
      window_loss = 0;
      window_targets = 0;
      window_tokens = 0;
      window_start = Clock::now();
    }
    if (differential && s % c.diff_attn_log_every == 0) {
      if (record.is_null()) record = {{"step", s}, {"epoch", state.epoch}};
      const ordered_json metrics = diff_attention_metrics(model, trace, monitor, c.diff_attn_warmup_steps > 0);
      for (const auto& [k, v] : metrics.items()) record[k] = v;
    }
    if (eval_every > 0 && (s % eval_every == 0 || s == total_steps)) {
      const float mix = model.diff_attn_mix();
      const auto t_eval = Clock::now();
      const double eval_loss = mean_loss(model, val_batches, "validation split");
      eval_seconds += seconds_since(t_eval);
      model.set_diff_attn_mix(mix);
      if (record.is_null()) record = {{"step", s}, {"epoch", state.epoch}};
      record["eval_loss"] = eval_loss;
      result.eval_loss = eval_loss;
      if (o.progress) fmt::print(stderr, "step {}/{} | eval_loss {:.4f}\n", s, total_steps, eval_loss);
    }
    if (!record.is_null()) {
      append_line(metrics_file, record);
      state.log_history.push_back(record);
    }
    const bool saved_now = s % save_every == 0 && s < total_steps;
    if (saved_now) {
      last_checkpoint = checkpoint_save(out_dir, model, optimizer, state, data.tokenizer_dir);
      if (earlier) earlier->discard();
      checkpoint_prune(out_dir, c.save_total_limit);
      result.checkpoints.push_back(last_checkpoint->string());
    }
    if (interrupt_requested() && s < total_steps) {
      // Ctrl-C / SIGTERM: keep this step's state (once) and stop; a second signal kills at once.
      if (!saved_now) {
        last_checkpoint = checkpoint_save(out_dir, model, optimizer, state, data.tokenizer_dir);
        if (earlier) earlier->discard();
        checkpoint_prune(out_dir, c.save_total_limit);
      }
      throw Interrupted(fmt::format("interrupted by signal {} after step {}/{}; saved {}\nresume with: difftx train "
                                    "{} --resume-from-checkpoint {}",
                                    interrupt_signal(), s, total_steps, last_checkpoint->string(),
                                    c.yaml_path.string(), last_checkpoint->string()),
                        interrupt_signal());
    }
  }
  result.train_seconds = seconds_since(t_loop) - eval_seconds;
  // The final model: the input's layout and dtype, run with mix = 1 (the warm-up is training-only).
  model.set_diff_attn_mix(1.0f);
  last_checkpoint = checkpoint_save(out_dir, model, optimizer, state, data.tokenizer_dir);
  if (earlier) earlier->discard();
  checkpoint_prune(out_dir, c.save_total_limit);
  result.checkpoints.push_back(last_checkpoint->string());
  model_save(model, out_dir, final_dtype);
  for (const char* name : kTokenizerFiles) {
    if (fs::is_regular_file(data.tokenizer_dir / name, ec) &&
        !fs::equivalent(data.tokenizer_dir / name, out_dir / name, ec)) {
      AtomicFile f(out_dir / name);
      MappedFile src(data.tokenizer_dir / name);
      f.write(src.data(), src.size());
      f.commit();
    }
  }
  result.steps = state.global_step;
  result.seconds = seconds_since(t_start);
  result.tokens_per_second = result.train_seconds > 0 ? static_cast<double>(result.tokens) / result.train_seconds : 0.0;
  return result;
}

EvaluateRunResult evaluate_run(const TrainConfig& c) {
  const auto t0 = Clock::now();
  Prepared data = prepare(c);
  Model model = model_load(data.model_dir);
  EvaluateRunResult r;
  r.train_samples = static_cast<int64_t>(data.train.size());
  r.eval_samples = static_cast<int64_t>(data.val.size());
  r.train_loss = mean_loss(model, make_micro_batches(data.train, c, 0, data.pad_id, false), "training split");
  if (!data.val.empty()) {
    r.eval_loss = mean_loss(model, make_micro_batches(data.val, c, 0, data.pad_id, false), "validation split");
    r.has_eval = true;
  }
  r.seconds = seconds_since(t0);
  r.samples_per_second = static_cast<double>(r.train_samples + r.eval_samples) / r.seconds;
  return r;
}

}  // namespace difftx
