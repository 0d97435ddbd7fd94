// difftx eval MODEL_DIR --text FILE [--context N] [--stride S] [--max-tokens N] [--kl-base BASE_DIR]
//   [--device cpu|cuda[:N]] [--weight-dtype auto|f32|bf16] [--json]
#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "cli/inference_options.h"
#include "common/error.h"
#include "common/number_text.h"
#include "infer/kl_divergence.h"
#include "infer/perplexity.h"
#include "infer/vocab_fit.h"
#include "io/json_file.h"
#include "io/text_file.h"
#include "tokenizer/tokenizer.h"

namespace difftx::cli {

namespace {

template <class Options>
void print_kl_divergence(const Options& o, const KlDivergenceResult& r) {
  if (o.json) {
    const ordered_json j = {{"model", o.dir},
                            {"lora", o.inference.lora.empty() ? ordered_json() : ordered_json(o.inference.lora)},
                            {"base_model", o.kl_base},
                            {"text", o.text},
                            {"tokens", r.tokens},
                            {"scored_tokens", r.scored},
                            {"context", o.eval.context},
                            {"stride", o.eval.stride},
                            {"windows", r.windows},
                            {"mean_loss", r.mean_loss},
                            {"perplexity", r.perplexity},
                            {"base_mean_loss", r.base_mean_loss},
                            {"base_perplexity", r.base_perplexity},
                            {"kld_mean", r.kld_mean},
                            {"kld_median", r.kld_median},
                            {"kld_p99_9", r.kld_p99_9},
                            {"kld_max", r.kld_max},
                            {"same_top1", r.same_top1},
                            {"rms_delta_p", r.rms_delta_p},
                            {"seconds", r.seconds}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("tokens       {} ({} scored, {} window{} of {} with stride {})\n", r.tokens, r.scored, r.windows,
             r.windows == 1 ? "" : "s", o.eval.context, o.eval.stride);
  fmt::print("             {:>12} {:>12}\n", "model", "base");
  fmt::print("mean loss    {:>12} {:>12} nats/token\n", number_text(r.mean_loss, 4), number_text(r.base_mean_loss, 4));
  fmt::print("perplexity   {:>12} {:>12}\n", number_text(r.perplexity, 3), number_text(r.base_perplexity, 3));
  fmt::print("KLD          mean {:.6f}  median {:.6f}  99.9% {:.6f}  max {:.6f} nats (model from base)\n", r.kld_mean,
             r.kld_median, r.kld_p99_9, r.kld_max);
  fmt::print("same top-1   {:.2f}% of positions\n", 100.0 * r.same_top1);
  fmt::print("RMS delta p  {:.3f}% (probability of the base's top token)\n", 100.0 * r.rms_delta_p);
}

}  // namespace

Command add_eval(CLI::App& root) {
  struct Options {
    InferenceOptions inference;
    std::string dir, text, tokenizer, kl_base;
    EvaluateOptions eval;
    int64_t max_tokens = 0;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("eval", "Perplexity and mean loss of a model on a text file (sliding window)");
  app->add_option("dir", o->dir, "Model directory (config.json, weights, tokenizer.json)")->required();
  app->add_option("--text", o->text, "UTF-8 text file")->required();
  app->add_option("--tokenizer", o->tokenizer, "Directory with tokenizer.json (default: the model directory)");
  app->add_option("--context", o->eval.context, "Tokens per window")->capture_default_str();
  CLI::Option* stride =
      app->add_option("--stride", o->eval.stride, "Tokens between window starts (default: half of --context)");
  app->add_option("--max-tokens", o->max_tokens, "Evaluate only the first N tokens (0 = all)")->capture_default_str();
  app->add_option("--kl-base", o->kl_base,
                  "Base model directory: also report the KL divergence of this model's next-token distributions "
                  "from the base's on the same windows (conversion quality)");
  add_inference_options(app, o->inference);
  app->add_flag("--json", o->json, "Machine-readable output");
  return {app, [o, stride]() {
            if (stride->count() == 0) o->eval.stride = std::max<int64_t>(1, o->eval.context / 2);
            if (o->max_tokens < 0) fail<ConfigError>("--max-tokens must be >= 0 (0 = all), got {}", o->max_tokens);
            const std::string text = read_text_file(o->text);
            // The model first: a wrong model directory is reported as such, not as a missing tokenizer.json.
            Model model = load_for_inference(o->dir, o->inference);
            Tokenizer tokenizer = Tokenizer::load(o->tokenizer.empty() ? o->dir : o->tokenizer);
            EncodeOptions encode;
            encode.add_special_tokens = true;
            DroppedText dropped;
            encode.dropped = &dropped;
            std::vector<int32_t> ids;
            try {
              ids = tokenizer.encode(text, encode);
            } catch (const TextError& e) {
              fail<FileError>("{}: {}", o->text, e.what());
            }
            if (const std::string w = dropped.warning(); !w.empty()) spdlog::warn("{}: {}", o->text, w);
            if (o->max_tokens > 0 && static_cast<int64_t>(ids.size()) > o->max_tokens) ids.resize(o->max_tokens);
            if (ids.size() < 2)
              fail<FileError>("{}: gives {} token(s); evaluation needs at least 2", o->text, ids.size());
            check_tokenizer_fits(tokenizer, model, ids, o->text);
            if (o->eval.context > model.config().max_position_embeddings)
              spdlog::warn("--context {} is longer than the model's max_position_embeddings ({})", o->eval.context,
                           model.config().max_position_embeddings);
            const bool progress = !o->json && ::isatty(STDERR_FILENO);  // a live counter, not log noise
            if (!o->kl_base.empty()) {
              InferenceOptions base_options = o->inference;
              base_options.lora.clear();  // --lora adapts the model under evaluation, not the reference
              const Model base = load_for_inference(o->kl_base, base_options);
              if (base.config().vocab_size != model.config().vocab_size)
                fail<ConfigError>("--kl-base {}: its vocabulary has {} entries but {} has {}; KL divergence compares "
                                  "two models sharing one vocabulary",
                                  o->kl_base, base.config().vocab_size, o->dir, model.config().vocab_size);
              const KlDivergenceResult r = evaluate_kl_divergence(model, base, ids, o->eval, [&](int64_t done, int64_t total) {
                if (progress) fmt::print(stderr, "\rwindow {}/{}", done, total);
              });
              if (progress) fmt::print(stderr, "\n");
              print_kl_divergence(*o, r);
              return 0;
            }
            EvaluateResult r = evaluate_perplexity(model, ids, o->eval, [&](int64_t done, int64_t total) {
              if (progress) fmt::print(stderr, "\rwindow {}/{}", done, total);
            });
            if (progress) fmt::print(stderr, "\n");
            if (o->json) {
              ordered_json j = {{"model", o->dir},
                                {"lora", o->inference.lora.empty() ? ordered_json() : ordered_json(o->inference.lora)},
                                {"weight_dtype", o->inference.resolved_weight_dtype()},
                                {"device", model.backend()->name()},
                                {"text", o->text},
                                {"tokens", r.tokens},       {"scored_tokens", r.scored},
                                {"context", o->eval.context}, {"stride", o->eval.stride},
                                {"windows", r.windows},     {"mean_loss", r.mean_loss},
                                {"perplexity", r.perplexity}, {"seconds", r.seconds},
                                {"tokens_per_second", r.forward_tokens / r.seconds}};
              fmt::print("{}\n", j.dump(2));
            } else {
              fmt::print("tokens       {} ({} scored, {} window{} of {} with stride {})\n", r.tokens, r.scored,
                         r.windows, r.windows == 1 ? "" : "s", o->eval.context, o->eval.stride);
              fmt::print("mean loss    {} nats/token\n", number_text(r.mean_loss, 4));
              fmt::print("perplexity   {}\n", number_text(r.perplexity, 3));
              fmt::print("speed        {:.1f} tokens/s ({} tokens through the model in {:.2f} s)\n",
                         r.forward_tokens / r.seconds, r.forward_tokens, r.seconds);
            }
            return 0;
          }};
}

}  // namespace difftx::cli
