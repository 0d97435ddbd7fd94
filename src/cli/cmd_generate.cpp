// difftx generate MODEL_DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K]
//   [--top-p P] [--repetition-penalty R] [--frequency-penalty F] [--presence-penalty P] [--seed S] [--no-cache] [--device cpu|cuda[:N]] [--weight-dtype auto|f32|bf16]
#include <cstdio>

#include "cli/command.h"
#include "cli/inference_options.h"
#include "infer/generate.h"
#include "infer/vocab_fit.h"
#include "common/error.h"
#include <spdlog/spdlog.h>
#include "tokenizer/decode_stream.h"
#include "tokenizer/tokenizer.h"

namespace difftx::cli {

Command add_generate(CLI::App& root) {
  struct Options {
    InferenceOptions inference;
    std::string dir, prompt, tokenizer;
    GenerateOptions generate;
    bool no_cache = false, no_special = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("generate", "Generate text from a prompt, streaming it as it is produced");
  app->add_option("dir", o->dir, "Model directory (config.json, weights, tokenizer.json)")->required();
  app->add_option("--prompt", o->prompt, "Prompt text")->required();
  app->add_option("--tokenizer", o->tokenizer, "Directory with tokenizer.json (default: the model directory)");
  app->add_option("--max-new-tokens", o->generate.max_new_tokens, "Tokens to generate at most")->capture_default_str();
  app->add_option("--temperature", o->generate.sampling.temperature, "0 = greedy; > 0 samples")->capture_default_str();
  app->add_option("--top-k", o->generate.sampling.top_k, "Sample among the k most likely tokens (0 = all)")
      ->capture_default_str();
  app->add_option("--top-p", o->generate.sampling.top_p, "Nucleus sampling mass (1 = off)")->capture_default_str();
  app->add_option("--repetition-penalty", o->generate.sampling.repetition_penalty,
                  "Divide positive (multiply negative) logits of the prompt's and generated ids by this (1 = off)")
      ->capture_default_str();
  app->add_option("--frequency-penalty", o->generate.sampling.frequency_penalty,
                  "Subtract this x the times an id was generated from its logit, in [-2, 2]")
      ->capture_default_str();
  app->add_option("--presence-penalty", o->generate.sampling.presence_penalty,
                  "Subtract this from the logit of each id generated so far, in [-2, 2]")
      ->capture_default_str();
  app->add_option("--seed", o->generate.sampling.seed, "Sampling seed (0 to 2^64 - 1)")
      ->capture_default_str()
      ->check(seed_value);
  add_inference_options(app, o->inference);
  app->add_flag("--no-cache", o->no_cache, "Re-run the whole sequence each step instead of using the KV cache");
  app->add_flag("--no-special-tokens", o->no_special, "Do not add the tokenizer's BOS/EOS around the prompt");
  return {app, [o]() {
            if (o->generate.max_new_tokens < 0)
              fail<ConfigError>("--max-new-tokens must be >= 0, got {}", o->generate.max_new_tokens);
            Sampler check(o->generate.sampling);  // option errors before any work
            // The model first: a wrong model directory is reported as such, not as a missing tokenizer.json.
            Model model = load_for_inference(o->dir, o->inference);
            Tokenizer tokenizer = Tokenizer::load(o->tokenizer.empty() ? o->dir : o->tokenizer);
            const std::vector<int32_t> prompt = encode_prompt(tokenizer, model, o->prompt, !o->no_special, "--prompt");
            const int64_t total = static_cast<int64_t>(prompt.size()) + o->generate.max_new_tokens;
            if (total > model.config().max_position_embeddings)
              spdlog::warn("prompt + --max-new-tokens = {} tokens, beyond the model's max_position_embeddings ({})",
                           total, model.config().max_position_embeddings);
            GenerateOptions g = o->generate;
            g.use_cache = !o->no_cache;
            g.stop_ids = stop_ids_for(model.config(), tokenizer.eos_id());
            DecodeOptions decode;
            decode.skip_special_tokens = true;
            DecodeStream stream(tokenizer, decode);
            std::vector<int32_t> shown;  // the prompt's decodable ids: the context of the first piece
            for (int32_t id : prompt)
              if (is_decodable(tokenizer, id)) shown.push_back(id);
            stream.prime(shown);
            std::fputs(o->prompt.c_str(), stdout);
            std::fflush(stdout);
            GenerateResult r;
            try {
              r = generate(model, prompt, g, [&](int32_t id) {
                if (!is_decodable(tokenizer, id)) return;  // padded-vocabulary id: decodes as nothing
                std::string piece = stream.step(id);
                std::fputs(piece.c_str(), stdout);
                std::fflush(stdout);
              });
            } catch (const NumericError&) {  // the error starts on a line of its own, after the text so far
              std::fputs("\n", stdout);
              std::fflush(stdout);
              throw;
            }
            std::fputs(stream.finish().c_str(), stdout);
            std::fputs("\n", stdout);
            std::fflush(stdout);
            if (r.new_ids.empty()) {  // --max-new-tokens 0: nothing ran, so there is no speed to report
              fmt::print(stderr, "generated: 0 tokens (--max-new-tokens 0)\n");
              return 0;
            }
            const double gen_tokens = static_cast<double>(r.new_ids.size() - 1);
            fmt::print(stderr, "prompt: {} tokens in {:.3f} s ({:.1f} tokens/s); generated: {} tokens in {:.3f} s "
                               "({}){}{}\n",
                       prompt.size(), r.prompt_seconds,
                       r.prompt_seconds > 0 ? prompt.size() / r.prompt_seconds : 0.0,
                       r.new_ids.size(), r.prompt_seconds + r.generate_seconds,
                       gen_tokens > 0 && r.generate_seconds > 0 ? fmt::format("{:.1f} tokens/s", gen_tokens / r.generate_seconds)
                                              : std::string("one token: no decoding speed"),
                       r.stopped ? ", stopped at EOS" : "", g.use_cache ? "" : ", without KV cache");
            return 0;
          }};
}

}  // namespace difftx::cli
