// difftx train CONFIG.yml [--max-steps N] [--resume-from-checkpoint DIR] [--overwrite] [--json]
// (under mpirun -np N: N data-parallel ranks, cli/train_ranks.h)
// difftx evaluate CONFIG.yml [--json] (under mpirun -np N: the ranks share out the micro-batches)
#include "cli/command.h"
#include "cli/train_ranks.h"
#include "common/interrupt.h"
#include "common/number_text.h"
#include "train/trainer.h"

namespace difftx::cli {

Command add_train(CLI::App& root) {
  struct Options {
    std::string config, resume;
    int64_t max_steps = 0;
    bool overwrite = false, json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("train", "Fine-tune base_model on an axolotl config (diff-transformer plugin keys included)");
  app->add_option("config", o->config, "axolotl config YAML")->required();
  app->add_option("--max-steps", o->max_steps, "Stop after N optimizer steps (overrides the config)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app->add_option("--resume-from-checkpoint", o->resume, "Continue from output_dir/checkpoint-N");
  app->add_flag("--overwrite", o->overwrite, "Replace the earlier run in output_dir (its files are set aside in output_dir/.overwritten-run until this run saves its first checkpoint)");
  app->add_flag("--json", o->json, "Print the summary as JSON");
  const CLI::Option* threads = root.get_option("--threads");
  return {app, [o, threads]() {
            std::unique_ptr<MpiCollective> ranks = start_ranks(threads->count() > 0);
            TrainResult r;
            try {
              TrainConfig config = train_config_load(o->config);
              interrupt_install();  // Ctrl-C saves a checkpoint and stops (a second one kills)
              TrainRunOptions run;
              run.overwrite = o->overwrite;
              if (o->max_steps > 0) run.max_steps = o->max_steps;
              run.resume_from_checkpoint = o->resume;
              run.collective = ranks.get();
              r = train_run(config, run);
            } catch (...) {
              return end_rank(ranks.get(), std::current_exception());
            }
            if (r.world_size > 1 && ranks->rank() != 0) return 0;  // rank 0 reports the run
            ordered_json j = {{"output_dir", r.output_dir.string()}, {"steps", r.steps}, {"first_step", r.first_step},
                              {"train_samples", r.train_samples}, {"val_samples", r.val_samples},
                              {"first_loss", r.first_loss}, {"last_loss", r.last_loss},
                              {"eval_loss", r.eval_loss ? ordered_json(*r.eval_loss) : ordered_json(nullptr)},
                              {"seconds", r.seconds}, {"train_seconds", r.train_seconds},
                              {"tokens_per_second", r.tokens_per_second},
                              {"checkpoints", r.checkpoints}, {"world_size", r.world_size},
                              {"communication_seconds", r.communication_seconds},
                              {"communication_waited_seconds", r.communication_waited_seconds},
                              {"rss_bytes", r.rss_bytes}, {"peak_rss_bytes", r.peak_rss_bytes}};
            if (o->json) {
              fmt::print("{}\n", j.dump(2));
            } else {
              // After a resume: the steps of this run, from the checkpoint's step on (the losses are this run's).
              const std::string steps = r.first_step > 0 ? fmt::format("steps {}-{} (resumed at {}; {} this run)",
                                                                       r.first_step + 1, r.steps, r.first_step,
                                                                       r.steps - r.first_step)
                                                         : fmt::format("{} steps", r.steps);
              fmt::print("trained {} in {:.1f} s ({:.1f} s of steps, {:.0f} tokens/s): loss {} -> {}{}\n", steps,
                         r.seconds, r.train_seconds, r.tokens_per_second, number_text(r.first_loss, 4),
                         number_text(r.last_loss, 4),
                         r.eval_loss ? ", eval_loss " + number_text(*r.eval_loss, 4) : "");
              if (r.world_size > 1)
                fmt::print("{} ranks: {:.1f} s in the gradient and loss sums on rank 0, {:.1f} s of it waiting (for a "
                           "slower rank, or for the transfer after the backward pass)\n",
                           r.world_size, r.communication_seconds, r.communication_waited_seconds);
              fmt::print("model: {} (metrics.jsonl, checkpoint-{}{})\n", r.output_dir.string(), r.steps,
                         r.tensorboard ? ", runs/ for TensorBoard" : "");
            }
            return 0;
          }};
}

Command add_evaluate(CLI::App& root) {
  struct Options {
    std::string config;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("evaluate", "Mean loss of base_model on the config's training and validation splits");
  app->add_option("config", o->config, "axolotl config YAML")->required();
  app->add_flag("--json", o->json, "Machine-readable output");
  const CLI::Option* threads = root.get_option("--threads");
  return {app, [o, threads]() {
            std::unique_ptr<MpiCollective> ranks = start_ranks(threads->count() > 0);
            EvaluateRunResult r;
            try {
              r = evaluate_run(train_config_load(o->config), ranks.get());
            } catch (...) {
              return end_rank(ranks.get(), std::current_exception());
            }
            if (r.world_size > 1 && ranks->rank() != 0) return 0;  // rank 0 reports
            ordered_json j = {{"train_loss", r.train_loss},
                              {"eval_loss", r.has_eval ? ordered_json(r.eval_loss) : ordered_json(nullptr)},
                              {"train_samples", r.train_samples}, {"eval_samples", r.eval_samples},
                              {"runtime", r.seconds}, {"samples_per_second", r.samples_per_second},
                              {"world_size", r.world_size}};
            if (o->json) {
              fmt::print("{}\n", j.dump(2));
            } else {
              fmt::print("train_loss   {} ({} samples)\n", number_text(r.train_loss, 4), r.train_samples);
              if (r.has_eval) fmt::print("eval_loss    {} ({} samples)\n", number_text(r.eval_loss, 4), r.eval_samples);
              fmt::print("runtime      {:.2f} s ({:.1f} samples/s{})\n", r.seconds, r.samples_per_second,
                         r.world_size > 1 ? fmt::format(", {} ranks", r.world_size) : "");
            }
            return 0;
          }};
}

}  // namespace difftx::cli
