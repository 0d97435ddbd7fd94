// The request bodies of OpenAI's /v1/completions and /v1/chat/completions, read the way OpenAI
// reads them: unknown fields are ignored, a field of the wrong type or out of range is a 400 error
// naming the field (ApiError), null means "not given".
//   completions:  prompt (string, [string], [ids] or [[ids]] with one prompt), max_tokens (default 16)
//   chat:         messages [{role: system | developer | user | assistant, content: string |
//                 [{type: "text", text}] (an assistant's may be left out)}], max_tokens or
//                 max_completion_tokens (default: what the context leaves)
//   both:         temperature (default 1, at most 2), top_p (1), top_k (0 = off; llama.cpp's
//                 extension), frequency_penalty and presence_penalty ([-2, 2], default 0),
//                 repetition_penalty (> 0, default 1; vLLM's extension), logit_bias ({"id": bias},
//                 bias in [-100, 100]; infer/sampling.h gives the formulas), seed (negative:
//                 random, as llama.cpp), stop (string or array of strings), stream,
//                 stream_options.include_usage, n (1 only), model (a string; any name, as
//                 llama.cpp's server: there is one model)
// What difftx does not do is refused rather than ignored: logprobs, top_logprobs, echo, tools, a
// response_format other than text, best_of other than 1, a suffix. Integers may be written 16.0;
// beyond 64 bits they are out of range.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/chat_template.h"

namespace difftx {

// An error answered with `status` and OpenAI's error body {"error": {message, type, param, code}}.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = {},
           std::string type = "invalid_request_error", std::string code = {})
      : std::runtime_error(message), status(status), param(std::move(param)), type(std::move(type)),
        code(std::move(code)) {}
  int status;
  std::string param, type, code;  // code: e.g. "context_length_exceeded" ("" -> null)
};
nlohmann::json api_error_body(const std::string& message, const std::string& type, const std::string& param,
                              const std::string& code = {});

struct CompletionRequest {
  bool chat = false;
  std::string prompt;                 // completions: the prompt text
  std::optional<std::vector<int32_t>> prompt_ids;  // completions: token ids given instead of text
  std::vector<ChatMessage> messages;  // chat
  std::optional<int64_t> max_tokens;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int64_t top_k = 0;
  float frequency_penalty = 0.0f, presence_penalty = 0.0f, repetition_penalty = 1.0f;
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id, bias
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage: a last chunk with the counts
};

// Throws ApiError(400) naming the field.
CompletionRequest parse_completion_request(const nlohmann::json& body, bool chat);

}  // namespace difftx
