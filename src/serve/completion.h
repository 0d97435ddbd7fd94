// One completion request between the HTTP layer and the batch decoder: the prompt's ids (text,
// token ids, or chat messages rendered with the server's chat format), the decoder request, and
// the reply read back as text (incremental detokenization, stop strings) with OpenAI's bodies.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "infer/batch_decoder.h"
#include "serve/openai_request.h"
#include "serve/stop_text.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/decode_stream.h"
#include "tokenizer/tokenizer.h"

namespace difftx {

// What the server serves, fixed once the model is loaded.
struct ServedModel {
  ServedModel(const Model& model, Tokenizer tokenizer) : model(&model), tokenizer(std::move(tokenizer)) {}
  const Model* model;
  Tokenizer tokenizer;
  ChatFormat chat_format = ChatFormat::chatml;
  std::string name;               // the id /v1/models lists and every response names
  std::vector<int32_t> stop_ids;  // EOS ids (config.json and tokenizer) and the chat format's end of turn
  std::string end_of_turn;        // the chat format's end-of-turn text, a stop string for chat requests
  BatchDecoder* decoder = nullptr;
};

struct PreparedCompletion {
  DecodeRequest decode;
  std::vector<std::string> stops;
};

// The decoder request for `r`: prompt ids, max_tokens (default 16 for completions, what the context
// leaves for chat; capped at what it leaves), sampling (a random seed when none is given). Throws
// ApiError(400) for a prompt that does not fit the context (naming the counts), chat messages the
// format rejects, token ids outside the vocabulary (in the prompt or logit_bias).
PreparedCompletion prepare_completion(const ServedModel& served, const CompletionRequest& r);

// The generated text of one sequence, read as it comes.
class CompletionReply {
 public:
  CompletionReply(const ServedModel& served, std::shared_ptr<Sequence> sequence, const PreparedCompletion& prepared);
  ~CompletionReply();  // cancels the sequence if it is still running (the client is gone)
  // Waits up to `timeout` for more text and appends it to `text`. Returns false once the reply is
  // complete (finish_reason() / error() then tell why).
  bool read(std::string& text, std::chrono::milliseconds timeout);
  const char* finish_reason() const;  // "stop" or "length" (null JSON while running: see below)
  const std::string& error() const { return error_; }  // non-empty when the decoder failed
  int64_t prompt_tokens() const { return sequence_->prompt_tokens(); }
  int64_t completion_tokens() const { return completion_tokens_; }

 private:
  const ServedModel& served_;
  std::shared_ptr<Sequence> sequence_;
  DecodeStream stream_;
  StopText stop_;
  bool done_ = false;
  const char* finish_ = "stop";
  std::string error_;
  int64_t completion_tokens_ = 0;
};

// OpenAI's bodies. `id`: "cmpl-..." / "chatcmpl-...", `created`: Unix seconds.
nlohmann::json completion_body(const ServedModel& served, const CompletionRequest& r, const std::string& id,
                               int64_t created, const std::string& text, const CompletionReply& reply);
// One streamed chunk: text (a delta for chat), finish_reason null or set. role_chunk: chat's first
// chunk, {"role": "assistant", "content": ""}.
nlohmann::json completion_chunk(const ServedModel& served, const CompletionRequest& r, const std::string& id,
                                int64_t created, const std::string& text, const char* finish_reason,
                                bool role_chunk = false);
nlohmann::json usage_body(const CompletionReply& reply);

}  // namespace difftx
