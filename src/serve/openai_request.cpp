#include "serve/openai_request.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <span>
#include <fmt/format.h>

#include "infer/sampling.h"

namespace difftx {

nlohmann::json api_error_body(const std::string& message, const std::string& type, const std::string& param,
                              const std::string& code) {
  const auto or_null = [](const std::string& v) { return v.empty() ? nlohmann::json() : nlohmann::json(v); };
  return {{"error", {{"message", message}, {"type", type}, {"param", or_null(param)}, {"code", or_null(code)}}}};
}

namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& field, const std::string& message) {
  throw ApiError(400, fmt::format("'{}': {}", field, message), field);
}

const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& v, const std::string& name) {
  if (!v.is_number()) bad(name, fmt::format("expected a number, got {}", v.type_name()));
  const double x = v.get<double>();
  if (!std::isfinite(x)) bad(name, "expected a finite number");
  return x;
}

int64_t integer(const json& v, const std::string& name) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) bad(name, "the integer is too large");
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  if (v.is_number_float()) {  // 16.0, or an integer beyond 64 bits that the parser kept as a double
    const double x = v.get<double>();
    if (!std::isfinite(x) || x != std::floor(x)) bad(name, fmt::format("expected an integer, got {}", x));
    if (x < -9.2e18 || x > 9.2e18) bad(name, fmt::format("the integer {} is out of range", x));
    return static_cast<int64_t>(x);
  }
  if (!v.is_number_integer()) bad(name, fmt::format("expected an integer, got {}", v.type_name()));
  return v.get<int64_t>();
}

bool boolean(const json& v, const std::string& name) {
  if (!v.is_boolean()) bad(name, fmt::format("expected true or false, got {}", v.type_name()));
  return v.get<bool>();
}

std::string string(const json& v, const std::string& name) {
  if (!v.is_string()) bad(name, fmt::format("expected a string, got {}", v.type_name()));
  return v.get<std::string>();
}

std::vector<int32_t> token_ids(const json& v, const std::string& name) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t id = integer(v[i], fmt::format("{}[{}]", name, i));
    if (id < 0 || id > INT32_MAX) bad(name, fmt::format("token id {} is out of range", id));
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

void read_prompt(const json& body, CompletionRequest& r) {
  const json* p = field(body, "prompt");
  if (p == nullptr) bad("prompt", "this field is required");
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
    return;
  }
  if (!p->is_array()) bad("prompt", fmt::format("expected a string or an array, got {}", p->type_name()));
  if (p->empty()) bad("prompt", "the array is empty");
  if ((*p)[0].is_number()) {
    r.prompt_ids = token_ids(*p, "prompt");
    return;
  }
  if (p->size() != 1) bad("prompt", "one prompt per request (this server takes no prompt arrays of several)");
  const json& one = (*p)[0];
  if (one.is_string()) r.prompt = one.get<std::string>();
  else if (one.is_array()) r.prompt_ids = token_ids(one, "prompt[0]");
  else bad("prompt[0]", fmt::format("expected a string or an array of token ids, got {}", one.type_name()));
}

void read_messages(const json& body, CompletionRequest& r) {
  const json* m = field(body, "messages");
  if (m == nullptr) bad("messages", "this field is required");
  if (!m->is_array() || m->empty()) bad("messages", "expected a non-empty array of messages");
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string name = fmt::format("messages[{}]", i);
    if (!msg.is_object()) bad(name, fmt::format("expected an object, got {}", msg.type_name()));
    const json* role = field(msg, "role");
    if (role == nullptr) bad(name + ".role", "this field is required");
    ChatMessage out{string(*role, name + ".role"), ""};
    if (out.role != "system" && out.role != "developer" && out.role != "user" && out.role != "assistant")
      bad(name + ".role", fmt::format("\"{}\" is not a role this server takes (system, developer, user, assistant; "
                                      "tool messages need tools, which are not supported)",
                                      out.role));
    const json* content = field(msg, "content");
    if (content == nullptr && out.role != "assistant")  // OpenAI leaves it out of an assistant's tool calls only
      bad(name + ".content", "this field is required (a string or an array of text parts)");
    if (content == nullptr) {
      out.content.clear();
    } else if (content->is_string()) {
      out.content = content->get<std::string>();
    } else if (content->is_array()) {  // content parts: text only
      for (size_t j = 0; j < content->size(); ++j) {
        const json& part = (*content)[j];
        const std::string pname = fmt::format("{}.content[{}]", name, j);
        if (!part.is_object()) bad(pname, "expected a content part object");
        const json* type = field(part, "type");
        if (type == nullptr || string(*type, pname + ".type") != "text")
          bad(pname + ".type", "only text content parts are supported");
        const json* text = field(part, "text");
        if (text == nullptr) bad(pname + ".text", "this field is required");
        out.content += string(*text, pname + ".text");
      }
    } else {
      bad(name + ".content", fmt::format("expected a string or an array of content parts, got {}",
                                         content->type_name()));
    }
    r.messages.push_back(std::move(out));
  }
}

}  // namespace

CompletionRequest parse_completion_request(const json& body, bool chat) {
  if (!body.is_object()) throw ApiError(400, fmt::format("the request body must be a JSON object, got {}", body.type_name()));
  CompletionRequest r;
  r.chat = chat;
  if (chat) read_messages(body, r);
  else read_prompt(body, r);
  static constexpr const char* kMaxTokens[] = {"max_completion_tokens", "max_tokens"};  // chat reads both
  for (const char* name : std::span(kMaxTokens).subspan(chat ? 0 : 1))
    if (const json* v = field(body, name); v && !r.max_tokens) {
      r.max_tokens = integer(*v, name);
      if (*r.max_tokens < 1) bad(name, fmt::format("must be >= 1, got {}", *r.max_tokens));
    }
  if (const json* v = field(body, "temperature")) {
    const double t = number(*v, "temperature");
    if (t < 0 || t > 2) bad("temperature", fmt::format("must be in [0, 2], got {}", t));
    r.temperature = static_cast<float>(t);
  }
  if (const json* v = field(body, "top_p")) {
    const double p = number(*v, "top_p");
    if (!(p > 0 && p <= 1)) bad("top_p", fmt::format("must be in (0, 1], got {}", p));
    r.top_p = std::max(static_cast<float>(p), std::numeric_limits<float>::min());  // 1e-46 is not 0
  }
  if (const json* v = field(body, "top_k")) {
    r.top_k = integer(*v, "top_k");
    if (r.top_k < 0) bad("top_k", fmt::format("must be >= 0 (0 = off), got {}", r.top_k));
  }
  if (const json* v = field(body, "seed"); v && (v->is_number_unsigned() || integer(*v, "seed") >= 0))
    r.seed = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
  if (const json* v = field(body, "model")) string(*v, "model");  // any name: the server has one model
  if (const json* v = field(body, "n"); v && integer(*v, "n") != 1) bad("n", "only n = 1 is supported");
  if (const json* v = field(body, "best_of"); v && integer(*v, "best_of") != 1) bad("best_of", "only best_of = 1 is supported");
  for (auto [name, out] : {std::pair{"frequency_penalty", &r.frequency_penalty}, {"presence_penalty", &r.presence_penalty}})
    if (const json* v = field(body, name)) {
      const double x = number(*v, name);
      if (x < -2 || x > 2) bad(name, fmt::format("must be in [-2, 2], got {}", x));
      *out = static_cast<float>(x);
    }
  if (const json* v = field(body, "repetition_penalty")) {  // vLLM's extension (transformers' processor)
    const double x = number(*v, "repetition_penalty");
    if (!(x >= kMinRepetitionPenalty && x <= kMaxRepetitionPenalty))
      bad("repetition_penalty",
          fmt::format("must be in [{}, {}] (1 = off), got {}", kMinRepetitionPenalty, kMaxRepetitionPenalty, x));
    r.repetition_penalty = static_cast<float>(x);
  }
  if (const json* v = field(body, "logit_bias")) {
    if (!v->is_object()) bad("logit_bias", fmt::format("expected an object of token id -> bias, got {}", v->type_name()));
    for (const auto& [key, value] : v->items()) {
      const std::string name = fmt::format("logit_bias[\"{}\"]", key);
      // A token id in decimal digits without leading zeros, so that no two keys name one token.
      uint64_t id = 0;
      const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
      const bool digits = !key.empty() && key[0] >= '0' && key[0] <= '9' && end == key.data() + key.size();
      if (!digits || (key.size() > 1 && key[0] == '0'))
        bad("logit_bias", fmt::format("the key \"{}\" is not a token id (a non-negative integer in decimal digits, "
                                      "without leading zeros)",
                                      key.size() > 40 ? key.substr(0, 40) + "..." : key));
      if (ec != std::errc() || id > static_cast<uint64_t>(INT32_MAX))
        bad("logit_bias", fmt::format("token id {} is out of range (at most {})",
                                      key.size() > 40 ? key.substr(0, 40) + "..." : key, INT32_MAX));
      const double bias = number(value, name);
      if (bias < -100 || bias > 100) bad(name, fmt::format("must be in [-100, 100], got {}", bias));
      r.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(bias));
    }
  }
  if (const json* v = field(body, "suffix"); v && !string(*v, "suffix").empty())
    bad("suffix", "insertion (a suffix after the completion) is not supported");
  if (const json* v = field(body, "top_logprobs"); v && integer(*v, "top_logprobs") != 0)
    bad("top_logprobs", "log probabilities are not supported");
  // Features a client would otherwise believe it got.
  if (const json* v = field(body, "logprobs"); v && !(v->is_boolean() && !v->get<bool>()) && !(v->is_number() && v->get<double>() == 0))
    bad("logprobs", "log probabilities are not supported");
  if (const json* v = field(body, "echo"); v && boolean(*v, "echo")) bad("echo", "echo is not supported");
  if (const json* v = field(body, "tools"); v && !(v->is_array() && v->empty())) bad("tools", "tools are not supported");
  if (const json* v = field(body, "response_format")) {
    const json* type = v->is_object() ? field(*v, "type") : nullptr;
    if (type == nullptr || !type->is_string() || type->get<std::string>() != "text")
      bad("response_format", "only {\"type\": \"text\"} is supported");
  }
  if (const json* v = field(body, "stop")) {
    if (v->is_string()) {
      r.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > 16) bad("stop", "at most 16 stop strings");
      for (size_t i = 0; i < v->size(); ++i) r.stop.push_back(string((*v)[i], fmt::format("stop[{}]", i)));
    } else {
      bad("stop", fmt::format("expected a string or an array of strings, got {}", v->type_name()));
    }
  }
  if (const json* v = field(body, "stream")) r.stream = boolean(*v, "stream");
  if (const json* v = field(body, "stream_options")) {
    if (!v->is_object()) bad("stream_options", fmt::format("expected an object, got {}", v->type_name()));
    if (const json* u = field(*v, "include_usage")) r.include_usage = boolean(*u, "stream_options.include_usage");
  }
  return r;
}

}  // namespace difftx
