// `difftx serve`: an OpenAI-compatible HTTP server (the conventions of llama.cpp's llama-server)
// on cpp-httplib, in front of a BatchDecoder (continuous batching).
//   GET  /health               503 {"error": ...} while the model loads, then {"status": "ok"}
//   GET  /v1/models            the served model
//   POST /v1/completions       OpenAI completions (serve/openai_request.h), streamed as server-sent
//   POST /v1/chat/completions  events ending in "data: [DONE]" when "stream": true
//   POST /tokenize             {"content": text, "add_special": bool} -> {"tokens": [ids]}
//   POST /detokenize           {"tokens": [ids]} -> {"content": text}
//   GET  /metrics              Prometheus text: requests, tokens, queue, slots, tokens/s
// Every error is OpenAI's {"error": {message, type, param, code}} with its status: 400 bad input
// (naming the field), 401 a missing or wrong API key (compared in constant time), 404, 413 a body
// over the cap, 429 the queue is full, 500 the model failed on a request, 503 still loading.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "serve/completion.h"

namespace difftx {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                    // 0: any free port (bind() returns it)
  std::string api_key;                // "": no key
  int64_t queue_size = 64;            // requests waiting for a slot before 429
  size_t max_body_bytes = 1 << 20;    // 413 above
  int read_timeout_s = 10;            // a client that sends nothing for this long is dropped
  int http_threads = 0;               // connections served at once (0: 4 * slots + 16, at least 32)
  int64_t slots = 4;                  // for the thread count's default
};

class Server {
 public:
  explicit Server(const ServeOptions& options);
  ~Server();
  // Binds the address; returns the port. Throws ConfigError naming the address when it cannot.
  int bind();
  // Answers in a thread of its own from now on (/health: 503 until serve()).
  void start();
  // Serves `served` (its model, tokenizer and decoder must outlive the server).
  void serve(ServedModel served);
  // Stops accepting connections and returns once the requests in flight have finished.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Constant-time comparison (no early exit on the first difference; the length is not secret).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace difftx
