// parse_completion_request: OpenAI's request bodies, defaults, and the 400s naming the field.
#include "serve/openai_request.h"

#include <gtest/gtest.h>

namespace difftx {
namespace {

using json = nlohmann::json;

// The field a bad body is rejected for (status 400), or "" when it is accepted.
std::string rejected_field(const json& body, bool chat = false) {
  try {
    parse_completion_request(body, chat);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    return e.param.empty() ? "<body>" : e.param;
  }
  return "";
}

TEST(OpenAIRequest, CompletionDefaults) {
  const CompletionRequest r = parse_completion_request(json{{"prompt", "Hello"}, {"model", "x"}, {"user", "u"}}, false);
  EXPECT_EQ(r.prompt, "Hello");
  EXPECT_FALSE(r.prompt_ids);
  EXPECT_FALSE(r.max_tokens);
  EXPECT_FLOAT_EQ(r.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.top_p, 1.0f);
  EXPECT_EQ(r.top_k, 0);
  EXPECT_FALSE(r.seed);
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.stream);
}

TEST(OpenAIRequest, CompletionFields) {
  const CompletionRequest r = parse_completion_request(
      json::parse(R"({"prompt": ["Hi"], "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 3, "seed": 42,
                      "stop": ["\n", "END"], "stream": true, "stream_options": {"include_usage": true},
                      "logit_bias": {}, "n": 1, "presence_penalty": null})"),
      false);
  EXPECT_EQ(r.prompt, "Hi");
  EXPECT_EQ(*r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(r.top_k, 3);
  EXPECT_EQ(*r.seed, 42u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(parse_completion_request(json{{"prompt", "a"}, {"stop", "x"}}, false).stop, std::vector<std::string>{"x"});
  EXPECT_FALSE(parse_completion_request(json{{"prompt", "a"}, {"seed", -1}}, false).seed);  // random, as llama.cpp
  EXPECT_EQ(*parse_completion_request(json{{"prompt", "a"}, {"seed", 18446744073709551615ull}}, false).seed,
            18446744073709551615ull);
}

TEST(OpenAIRequest, PromptAsTokenIds) {
  EXPECT_EQ(*parse_completion_request(json{{"prompt", {1, 2, 3}}}, false).prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(*parse_completion_request(json{{"prompt", {{5, 6}}}}, false).prompt_ids, (std::vector<int32_t>{5, 6}));
}

TEST(OpenAIRequest, ChatMessages) {
  const CompletionRequest r = parse_completion_request(
      json::parse(R"({"messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
                                   {"role": "assistant", "content": null}],
                      "max_completion_tokens": 5, "max_tokens": 9})"),
      true);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hello");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(*r.max_tokens, 5);  // max_completion_tokens first, as OpenAI
}

TEST(OpenAIRequest, BadBodiesNameTheField) {
  EXPECT_EQ(rejected_field(json::array()), "<body>");
  EXPECT_EQ(rejected_field(json::object()), "prompt");
  EXPECT_EQ(rejected_field(json{{"prompt", 3}}), "prompt");
  EXPECT_EQ(rejected_field(json{{"prompt", json::array()}}), "prompt");
  EXPECT_EQ(rejected_field(json{{"prompt", {"a", "b"}}}), "prompt");
  EXPECT_EQ(rejected_field(json{{"prompt", {1, -2}}}), "prompt");
  EXPECT_EQ(rejected_field(json{{"prompt", {1, "x"}}}), "prompt[1]");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"max_tokens", "10"}}), "max_tokens");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"max_tokens", 0}}), "max_tokens");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"max_tokens", 1.5}}), "max_tokens");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"temperature", "hot"}}), "temperature");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"temperature", -1}}), "temperature");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"temperature", 1e39}}), "temperature");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"top_p", -1e-50}}), "top_p");
  // A top_p below float's range is the smallest float, not 0 (which would be refused as out of (0, 1]).
  EXPECT_GT(parse_completion_request(json{{"prompt", "a"}, {"top_p", 1e-50}}, false).top_p, 0.0f);
  // Integers: 16.0 is 16; beyond 64 bits (kept as a double by the parser) is out of range, not "not an integer".
  EXPECT_EQ(parse_completion_request(json{{"prompt", "a"}, {"max_tokens", 16.0}}, false).max_tokens, 16);
  for (const char* text : {R"({"prompt": "a", "max_tokens": 18446744073709551616})", R"({"prompt": "a", "max_tokens": 1e20})",
                           R"({"prompt": "a", "seed": -99999999999999999999})"}) {
    try {
      parse_completion_request(json::parse(text), false);
      ADD_FAILURE() << text;
    } catch (const ApiError& e) {
      EXPECT_NE(std::string(e.what()).find("is out of range"), std::string::npos) << e.what();
    }
  }
  // Penalties and biases: read, and refused out of OpenAI's ranges.
  const CompletionRequest penalised = parse_completion_request(
      json::parse(R"({"prompt": "a", "frequency_penalty": 0.5, "presence_penalty": -2, "repetition_penalty": 1.3,
                      "logit_bias": {"345": 100, "7": -5.5}})"),
      false);
  EXPECT_FLOAT_EQ(penalised.frequency_penalty, 0.5f);
  EXPECT_FLOAT_EQ(penalised.presence_penalty, -2.0f);
  EXPECT_FLOAT_EQ(penalised.repetition_penalty, 1.3f);
  EXPECT_EQ(penalised.logit_bias, (std::vector<std::pair<int32_t, float>>{{345, 100.0f}, {7, -5.5f}}));
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"frequency_penalty", 2.5}}), "frequency_penalty");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"presence_penalty", "high"}}), "presence_penalty");
  for (double p : {0.0, 1e-50, 0.009, 100.5})
    EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"repetition_penalty", p}}), "repetition_penalty") << p;
  // One spelling per token id, so that two keys cannot add up beyond [-100, 100] on one token.
  for (const char* key : {"07837", "-0", "00", "+7", " 7", "7 ", "", "99999999999", "184467440737095516160"})
    EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logit_bias", {{key, 1}}}}), "logit_bias") << key;
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logit_bias", {{"345", 101}}}}), "logit_bias[\"345\"]");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logit_bias", {{"the", 1}}}}), "logit_bias");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logit_bias", {{"-3", 1}}}}), "logit_bias");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logit_bias", {{"12x", 1}}}}), "logit_bias");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logit_bias", {1, 2}}}), "logit_bias");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logit_bias", {{"3", "up"}}}}), "logit_bias[\"3\"]");
  // Features difftx does not have: refused when they would change the output.
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"best_of", 5}}), "best_of");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"suffix", "end"}}), "suffix");
  EXPECT_EQ(rejected_field(json{{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"top_logprobs", 5}}, true),
            "top_logprobs");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"model", 5}}), "model");
  // ... and accepted at the values that change nothing (what some clients always send).
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"frequency_penalty", 0}, {"presence_penalty", 0.0},
                                {"logit_bias", json::object()}, {"best_of", 1}, {"suffix", ""}, {"top_logprobs", 0},
                                {"model", "gpt-3.5-turbo-instruct"}}),
            "");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logprobs", 2}}), "logprobs");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logprobs", true}}), "logprobs");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"echo", true}}), "echo");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"tools", {{{"type", "function"}}}}}), "tools");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"response_format", {{"type", "json_object"}}}}), "response_format");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"logprobs", false}, {"echo", false}, {"tools", json::array()},
                                {"response_format", {{"type", "text"}}}}),
            "");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"top_p", 0}}), "top_p");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"top_p", 1.5}}), "top_p");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"top_k", -1}}), "top_k");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"seed", "1"}}), "seed");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"n", 2}}), "n");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"stop", 5}}), "stop");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"stop", {"x", 1}}}), "stop[1]");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"stream", "yes"}}), "stream");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"stream_options", 1}}), "stream_options");
  EXPECT_EQ(rejected_field(json::object(), true), "messages");
  EXPECT_EQ(rejected_field(json{{"messages", json::array()}}, true), "messages");
  EXPECT_EQ(rejected_field(json{{"messages", {1}}}, true), "messages[0]");
  EXPECT_EQ(rejected_field(json{{"messages", {{{"content", "x"}}}}}, true), "messages[0].role");
  EXPECT_EQ(rejected_field(json{{"messages", {{{"role", 1}}}}}, true), "messages[0].role");
  EXPECT_EQ(rejected_field(json{{"messages", {{{"role", "user"}, {"content", 1}}}}}, true), "messages[0].content");
  EXPECT_EQ(rejected_field(json{{"messages", {{{"role", "wizard"}, {"content", "hi"}}}}}, true), "messages[0].role");
  EXPECT_EQ(rejected_field(json{{"messages", {{{"role", "tool"}, {"content", "42"}}}}}, true), "messages[0].role");
  EXPECT_EQ(rejected_field(json{{"messages", {{{"role", "user"}}}}}, true), "messages[0].content");
  EXPECT_EQ(rejected_field(json{{"messages", {{{"role", "user"}, {"content", nullptr}}}}}, true), "messages[0].content");
  EXPECT_EQ(rejected_field(json{{"messages", {{{"role", "developer"}, {"content", "Be brief."}}}}}, true), "");
  EXPECT_EQ(rejected_field(json::parse(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})"), true),
            "messages[0].content[0].type");
  EXPECT_EQ(rejected_field(json{{"prompt", "a"}, {"temperature", nullptr}, {"max_tokens", nullptr}}), "");
}

}  // namespace
}  // namespace difftx
