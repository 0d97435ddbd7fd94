#include "serve/completion.h"

#include <fmt/format.h>

#include <random>

#include "common/error.h"
#include "infer/vocab_fit.h"

namespace difftx {

namespace {

DecodeOptions skip_special() {
  DecodeOptions o;
  o.skip_special_tokens = true;
  return o;
}

}  // namespace

PreparedCompletion prepare_completion(const ServedModel& served, const CompletionRequest& r) {
  const Model& model = *served.model;
  const int64_t V = model.config().vocab_size, context = served.decoder->context();
  PreparedCompletion p;
  std::vector<int32_t>& ids = p.decode.prompt;
  const char* prompt_field = r.chat ? "messages" : "prompt";
  try {
    if (r.chat) {
      const std::string text = chat_render(served.chat_format, r.messages, served.tokenizer, true);
      ids = served.tokenizer.encode(text, EncodeOptions{});  // the format's BOS is in the text
    } else if (r.prompt_ids) {
      ids = *r.prompt_ids;
    } else {
      EncodeOptions o;
      o.add_special_tokens = true;
      ids = served.tokenizer.encode(r.prompt, o);
    }
  } catch (const Error& e) {
    throw ApiError(400, fmt::format("'{}': {}", prompt_field, e.what()), prompt_field);
  }
  if (ids.empty()) throw ApiError(400, fmt::format("'{}': the prompt gives no tokens", prompt_field), prompt_field);
  for (int32_t id : ids)
    if (id < 0 || id >= V)
      throw ApiError(400, fmt::format("'{}': token id {} is outside the model's vocabulary [0, {})", prompt_field, id, V),
                     prompt_field);
  const auto P = static_cast<int64_t>(ids.size());
  if (P >= context)
    throw ApiError(400,
                   fmt::format("the prompt has {} tokens; the context holds {} per request (prompt + at least one "
                               "new token; the server's --ctx-size)",
                               P, context),
                   prompt_field, "invalid_request_error", "context_length_exceeded");
  const int64_t room = context - P;
  p.decode.max_new_tokens = std::min(r.max_tokens.value_or(r.chat ? room : 16), room);
  p.decode.sampling.temperature = r.temperature;
  p.decode.sampling.top_p = r.top_p;
  p.decode.sampling.top_k = r.top_k;
  p.decode.sampling.frequency_penalty = r.frequency_penalty;
  p.decode.sampling.presence_penalty = r.presence_penalty;
  p.decode.sampling.repetition_penalty = r.repetition_penalty;
  for (const auto& [id, bias] : r.logit_bias)
    if (id >= V)
      throw ApiError(400, fmt::format("'logit_bias': token id {} is outside the model's vocabulary [0, {})", id, V),
                     "logit_bias");
  p.decode.sampling.logit_bias = r.logit_bias;
  p.decode.sampling.seed = r.seed ? *r.seed : std::random_device{}();
  p.decode.stop_ids = served.stop_ids;
  p.stops = r.stop;
  if (r.chat && !served.end_of_turn.empty()) p.stops.push_back(served.end_of_turn);
  return p;
}

CompletionReply::CompletionReply(const ServedModel& served, std::shared_ptr<Sequence> sequence,
                                 const PreparedCompletion& prepared)
    : served_(served), sequence_(std::move(sequence)), stream_(served.tokenizer, skip_special()),
      stop_(prepared.stops) {
  // The prompt is the left context of the first piece (as `difftx generate` shows it).
  stream_.prime(decodable_ids(served.tokenizer, prepared.decode.prompt));
}

CompletionReply::~CompletionReply() {
  if (!done_) sequence_->cancel();
}

bool CompletionReply::read(std::string& text, std::chrono::milliseconds timeout) {
  if (done_) return false;
  std::vector<int32_t> ids;
  const bool more = sequence_->next_for(ids, timeout);
  for (int32_t id : ids) {
    ++completion_tokens_;
    if (is_decodable(served_.tokenizer, id)) text += stop_.add(stream_.step(id));
    if (stop_.stopped()) {  // the stop string ends the reply; the decoder frees the slot
      sequence_->cancel();
      finish_ = "stop";
      done_ = true;
      return false;
    }
  }
  if (more) return true;
  done_ = true;
  text += stop_.add(stream_.finish());
  text += stop_.finish();
  const FinishReason reason = sequence_->finish_reason();
  finish_ = reason == FinishReason::length ? "length" : "stop";
  if (reason == FinishReason::error) error_ = sequence_->error();
  return false;
}

const char* CompletionReply::finish_reason() const { return finish_; }

nlohmann::json usage_body(const CompletionReply& reply) {
  return {{"prompt_tokens", reply.prompt_tokens()},
          {"completion_tokens", reply.completion_tokens()},
          {"total_tokens", reply.prompt_tokens() + reply.completion_tokens()}};
}

nlohmann::json completion_body(const ServedModel& served, const CompletionRequest& r, const std::string& id,
                               int64_t created, const std::string& text, const CompletionReply& reply) {
  nlohmann::json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", reply.finish_reason()}};
  if (r.chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  return {{"id", id},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", served.name},
          {"choices", nlohmann::json::array({choice})},
          {"usage", usage_body(reply)}};
}

nlohmann::json completion_chunk(const ServedModel& served, const CompletionRequest& r, const std::string& id,
                                int64_t created, const std::string& text, const char* finish_reason, bool role_chunk) {
  nlohmann::json choice = {{"index", 0},
                           {"logprobs", nullptr},
                           {"finish_reason", finish_reason ? nlohmann::json(finish_reason) : nlohmann::json()}};
  if (r.chat) {
    nlohmann::json delta = nlohmann::json::object();
    if (role_chunk) delta["role"] = "assistant";
    if (role_chunk || !text.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", served.name},
          {"choices", nlohmann::json::array({choice})}};
}

}  // namespace difftx
