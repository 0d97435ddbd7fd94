// difftx serve MODEL_DIR [--host H] [--port P] [--parallel N] [--ctx-size T] [--threads N]
//   [--api-key KEY] [--chat-template NAME] [--alias NAME] [--queue-size N] [--timeout S]
//   [--device ...] [--weight-dtype ...] [--compute-dtype ...] [--lora DIR]
// The HTTP server answers from the start (/health: 503 while the model loads). SIGINT/SIGTERM stop
// it: no new connections, the requests in flight finish, exit 0.
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "cli/inference_options.h"
#include "common/error.h"
#include "infer/batch_decoder.h"
#include "infer/generate.h"
#include "model/model_dir.h"
#include "serve/server.h"

namespace difftx::cli {

namespace {

// The chat format: --chat-template, else the one the tokenizer's Jinja template writes, else chatml
// (llama-server's fallback too). Its end-of-turn token stops generation (as a token when the
// vocabulary has it, else as text).
void choose_chat_format(ServedModel& m, const std::string& name) {
  std::string why = "--chat-template";
  if (!name.empty()) {
    m.chat_format = chat_format_from_name(name, &m.tokenizer);
  } else if (auto guess = chat_format_guess(m.tokenizer.chat_template())) {
    m.chat_format = *guess;
    why = "the tokenizer's chat_template";
  } else {
    m.chat_format = ChatFormat::chatml;
    why = m.tokenizer.chat_template().empty() ? "the tokenizer has no chat_template" : "its chat_template is not one "
                                                                                         "of the built-in formats";
    why += "; the default";
  }
  const char* end = m.chat_format == ChatFormat::chatml ? "<|im_end|>"
                    : m.chat_format == ChatFormat::llama3 ? "<|eot_id|>"
                                                          : "";
  if (*end) {
    if (auto id = m.tokenizer.token_to_id(end); id && *id < m.model->config().vocab_size) m.stop_ids.push_back(*id);
    else m.end_of_turn = end;
  }
  spdlog::info("chat format: {} ({})", chat_format_name(m.chat_format), why);
}

// The tokenizer of the model directory, or of --tokenizer; the error says where else it may be.
Tokenizer load_tokenizer(const std::string& dir, const std::string& tokenizer_dir) {
  try {
    return Tokenizer::load(tokenizer_dir.empty() ? dir : tokenizer_dir);
  } catch (const Error& e) {
    if (!tokenizer_dir.empty()) throw;
    fail<ConfigError>("{} (a tokenizer in another directory: --tokenizer DIR)", e.what());
  }
}

}  // namespace

Command add_serve(CLI::App& root) {
  struct Options {
    InferenceOptions inference;
    std::string dir, tokenizer, chat_template, alias;
    ServeOptions serve;
    int64_t ctx_size = 0;
    int threads = 0;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "serve", "Serve the model over HTTP with OpenAI's API (completions, chat, streaming), batching requests");
  app->add_option("dir", o->dir, "Model directory (config.json, weights, tokenizer.json)")->required();
  app->add_option("--host", o->serve.host, "Address to listen on")->capture_default_str();
  app->add_option("--port", o->serve.port, "Port (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_option("--parallel", o->serve.slots, "Requests decoded together (KV-cache slots)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app->add_option("--ctx-size", o->ctx_size,
                  "Tokens of context per slot, prompt + generated (default: max_position_embeddings, at most 4096)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 24));
  app->add_option("--threads", o->threads, "Threads for the model (default: all cores)")->check(CLI::Range(0, 4096));
  app->add_option("--api-key", o->serve.api_key, "Require 'Authorization: Bearer KEY' (all but /health)")
      ->check(CLI::Validator(
          [](std::string& key) {
            return key.empty() ? std::string("an empty key would leave the server open; leave --api-key out for that")
                               : std::string();
          },
          "KEY"));
  app->add_option("--chat-template", o->chat_template,
                  "Chat format for /v1/chat/completions (default: the tokenizer's, recognised, else chatml)");
  app->add_option("--alias", o->alias, "Model id in responses and /v1/models (default: the directory's name)");
  app->add_option("--tokenizer", o->tokenizer, "Directory with tokenizer.json (default: the model directory)");
  app->add_option("--queue-size", o->serve.queue_size, "Requests waiting for a slot before 429")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app->add_option("--timeout", o->serve.read_timeout_s, "Seconds a client may stay silent (or not read) before it is dropped")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  add_inference_options(app, o->inference);
  return {app, [o]() {
            set_threads(o->threads);
            // SIGINT/SIGTERM go to one thread that stops the server; every thread started from here
            // inherits the blocked mask. A client gone mid-write is an error return, not SIGPIPE.
            std::signal(SIGPIPE, SIG_IGN);
            sigset_t stop_signals;
            sigemptyset(&stop_signals);
            sigaddset(&stop_signals, SIGINT);
            sigaddset(&stop_signals, SIGTERM);
            pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

            Server server(o->serve);
            const int port = server.bind();
            server.start();
            std::fprintf(stderr, "listening on http://%s:%d (loading %s)\n", o->serve.host.c_str(), port,
                         o->dir.c_str());
            std::atomic<bool> failed{false};
            std::thread stopper([&] {
              int signal = 0;
              sigwait(&stop_signals, &signal);
              if (!failed) spdlog::info("signal {}: refusing new requests, finishing those in flight", signal);
              server.stop();
            });
            const auto finish = [&] {  // wakes the stopper when no signal came (loading failed), then joins it
              failed = true;
              pthread_kill(stopper.native_handle(), SIGTERM);
              stopper.join();
            };
            std::unique_ptr<BatchDecoder> decoder;
            try {
              Model model = load_for_inference(o->dir, o->inference);
              ServedModel served(model, load_tokenizer(o->dir, o->tokenizer));
              const ModelConfig& c = model.config();
              const int64_t context =
                  o->ctx_size > 0 ? o->ctx_size : std::min<int64_t>(c.max_position_embeddings, 4096);
              if (context > c.max_position_embeddings)
                spdlog::warn("--ctx-size {} is longer than the model's max_position_embeddings ({}): positions beyond "
                             "it are untrained",
                             context, c.max_position_embeddings);
              decoder = std::make_unique<BatchDecoder>(model, o->serve.slots, context, o->serve.queue_size);
              served.decoder = decoder.get();
              served.name = o->alias.empty() ? std::filesystem::path(o->dir).lexically_normal().filename().string()
                                             : o->alias;
              if (served.name.empty()) served.name = std::filesystem::absolute(o->dir).parent_path().filename().string();
              served.stop_ids = stop_ids_for(c, served.tokenizer.eos_id());
              choose_chat_format(served, o->chat_template);
              server.serve(std::move(served));
              std::fprintf(stderr, "ready: %s, %lld slots x %lld tokens of context, on http://%s:%d\n",
                           o->dir.c_str(), static_cast<long long>(o->serve.slots), static_cast<long long>(context),
                           o->serve.host.c_str(), port);
              stopper.join();  // until SIGINT/SIGTERM; the server has finished its requests then
              decoder.reset();
            } catch (...) {
              finish();
              throw;
            }
            std::fprintf(stderr, "stopped\n");
            return 0;
          }};
}

}  // namespace difftx::cli
