// `difftx serve` as a process on loopback, talked to with cpp-httplib's client and raw sockets:
// every endpoint, streamed == non-streamed text, stop strings, 16 concurrent clients getting what
// they get alone, the bad inputs (400 naming the field, 401, 404, 413, 429), a client leaving
// mid-stream, slowloris connections, and SIGTERM during requests (exit 0).
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>
#include <thread>

#include "serve/server.h"
#include "test_util.h"

namespace difftx {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kModel = std::string(DIFFTX_SOURCE_DIR) + "/examples/models/wp-llama-12m";

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A server process on an ephemeral port, stopped with SIGTERM (and expected to exit 0).
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--threads", "2", "serve", kModel, "--port", "0"};
    if (std::find(extra.begin(), extra.end(), "--ctx-size") == extra.end()) extra.insert(extra.end(), {"--ctx-size", "128"});
    args.insert(args.end(), extra.begin(), extra.end());
    child_ = test::spawn_difftx(args, dir_.path());
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    const std::regex listening("listening on http://127\\.0\\.0\\.1:([0-9]+)");
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string err = read_file(child_.err);
      if (port_ == 0 && std::regex_search(err, m, listening)) port_ = std::stoi(m[1]);
      if (port_ != 0 && err.find("ready:") != std::string::npos) return;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "the server did not start:\n" << read_file(child_.err);
  }
  ~ServeProcess() {
    if (!stopped_) stop();
  }
  int stop() {
    signal_stop();
    return test::wait_child(child_);
  }
  void signal_stop() {  // SIGTERM; stop() (or the destructor) waits for the exit
    stopped_ = true;
    ::kill(child_.pid, SIGTERM);
  }
  int wait() { return test::wait_child(child_); }
  httplib::Client client(const std::string& key = "") const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    if (!key.empty()) c.set_bearer_token_auth(key.c_str());
    return c;
  }
  int port() const { return port_; }
  std::string log() const { return read_file(child_.err); }

 private:
  test::TempDir dir_;
  test::Child child_;
  int port_ = 0;
  bool stopped_ = false;
};

json post(const httplib::Client& c0, const std::string& path, const json& body, int expected_status = 200) {
  auto& c = const_cast<httplib::Client&>(c0);
  auto res = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(res) << "no response to " << path;
  if (!res) return {};
  EXPECT_EQ(res->status, expected_status) << path << " " << body.dump() << " -> " << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  return json::parse(res->body);
}

// The server-sent events of a streamed request, each event's JSON (the [DONE] marker last, as "[DONE]").
std::vector<std::string> stream_events(httplib::Client& c, const std::string& path, const json& body) {
  std::string raw;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    raw.append(data, n);
    return true;
  };
  auto res = c.send(req);
  EXPECT_TRUE(res);
  if (res) {
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  }
  std::vector<std::string> events;
  std::istringstream in(raw);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("data: ", 0) == 0) events.push_back(line.substr(6));
  return events;
}

std::string streamed_text(httplib::Client& c, const std::string& path, json body, std::string* finish = nullptr,
                          json* usage = nullptr) {
  body["stream"] = true;
  const std::vector<std::string> events = stream_events(c, path, body);
  EXPECT_FALSE(events.empty());
  if (events.empty()) return "";
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json e = json::parse(events[i]);
    if (e.contains("usage")) {
      if (usage) *usage = e["usage"];
      continue;
    }
    const json& choice = e["choices"][0];
    if (path.find("chat") != std::string::npos) {
      if (i == 0) {
        EXPECT_EQ(choice["delta"]["role"], "assistant");
      }
      if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    } else {
      text += choice["text"].get<std::string>();
    }
    if (!choice["finish_reason"].is_null() && finish) *finish = choice["finish_reason"];
  }
  return text;
}

// Polls /metrics until `line` appears (or 30 s pass).
bool metric_reaches(httplib::Client& c, const std::string& line) {
  for (int i = 0; i < 1500; ++i) {
    auto r = c.Get("/metrics");
    if (r && r->body.find(line) != std::string::npos) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// The value of a metric line "NAME VALUE" of GET /metrics, or -1 when absent.
double metric_value(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find("\n" + name + " ");
  return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + name.size() + 2));
}

// Waits (up to 30 s) until the server has taken `requests` completions (queued, decoding or
// finished) with every slot of `slots` busy.
bool all_admitted_and_slots_busy(httplib::Client& c, int requests, int slots) {
  for (int i = 0; i < 1500; ++i) {
    if (auto r = c.Get("/metrics")) {
      const double busy = metric_value(r->body, "difftx_slots_busy");
      const double seen = metric_value(r->body, "difftx_queue_length") + busy +
                          metric_value(r->body, "difftx_requests_finished_total");
      if (busy == slots && seen == requests) return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

TEST(ServeHttp, EndpointsAndStreamedEqualsNonStreamed) {
  ServeProcess server;
  httplib::Client c = server.client();
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");
  const json models = json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["data"][0]["id"], "wp-llama-12m");
  EXPECT_EQ(models["data"][0]["meta"]["n_ctx"], 128);

  const json tokens = post(c, "/tokenize", {{"content", "The prince said"}});
  ASSERT_GT(tokens["tokens"].size(), 1u);
  EXPECT_EQ(post(c, "/detokenize", {{"tokens", tokens["tokens"]}})["content"], "The prince said");

  const json body = {{"prompt", "The prince said"}, {"max_tokens", 20}, {"temperature", 0}};
  const json r = post(c, "/v1/completions", body);
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["model"], "wp-llama-12m");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  const std::string text = r["choices"][0]["text"];
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(r["usage"]["completion_tokens"], 20);
  EXPECT_EQ(r["usage"]["prompt_tokens"], 4);  // BOS + 3
  EXPECT_EQ(r["usage"]["total_tokens"], 24);
  // The same text as `difftx generate` prints after the prompt.
  const test::RunResult gen = test::run_difftx({"generate", kModel, "--prompt", "The prince said", "--max-new-tokens", "20"});
  EXPECT_EQ(gen.out, "The prince said" + text + "\n");

  std::string finish;
  json usage;
  json with_usage = body;
  with_usage["stream_options"] = {{"include_usage", true}};
  EXPECT_EQ(streamed_text(c, "/v1/completions", with_usage, &finish, &usage), text);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(usage["completion_tokens"], 20);

  const json chat = {{"messages", {{{"role", "user"}, {"content", "Who is Natasha?"}}}},
                     {"max_tokens", 16}, {"temperature", 0}};
  const json cr = post(c, "/v1/chat/completions", chat);
  EXPECT_EQ(cr["object"], "chat.completion");
  EXPECT_EQ(cr["choices"][0]["message"]["role"], "assistant");
  const std::string reply = cr["choices"][0]["message"]["content"];
  EXPECT_EQ(streamed_text(c, "/v1/chat/completions", chat), reply);

  // A stop string taken from the middle of the text: the reply ends before it.
  const size_t cut = text.size() / 2;
  const std::string stop = text.substr(cut, 4);
  json stopped = body;
  stopped["stop"] = {stop, "never-there"};
  const json sr = post(c, "/v1/completions", stopped);
  EXPECT_EQ(sr["choices"][0]["text"], text.substr(0, text.find(stop)));
  EXPECT_EQ(sr["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(streamed_text(c, "/v1/completions", stopped, &finish), text.substr(0, text.find(stop)));
  EXPECT_EQ(finish, "stop");

  // Token ids as the prompt give what their text gives.
  json by_ids = body;
  by_ids["prompt"] = post(c, "/tokenize", {{"content", "The prince said"}, {"add_special", true}})["tokens"];
  EXPECT_EQ(post(c, "/v1/completions", by_ids)["choices"][0]["text"], text);

  EXPECT_TRUE(metric_reaches(c, "difftx_requests_finished_total 7"));
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("# TYPE difftx_generated_tokens_per_second gauge"), std::string::npos);
  EXPECT_NE(metrics.find("difftx_slots 4"), std::string::npos);
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeHttp, BadInputGetsClearErrors) {
  ServeProcess server;
  httplib::Client c = server.client();
  auto bad_json = c.Post("/v1/completions", "{\"prompt\": ", "application/json");
  ASSERT_TRUE(bad_json);
  EXPECT_EQ(bad_json->status, 400);
  EXPECT_NE(json::parse(bad_json->body)["error"]["message"].get<std::string>().find("not valid JSON"), std::string::npos);
  EXPECT_EQ(post(c, "/v1/completions", {{"prompt", "a"}, {"temperature", "hot"}}, 400)["error"]["param"], "temperature");
  auto overflow = c.Post("/v1/completions", R"({"prompt": "a", "foo": 1e400})", "application/json");
  EXPECT_EQ(overflow->status, 400);
  EXPECT_EQ(json::parse(overflow->body)["error"]["param"], "foo");
  auto nested_overflow = c.Post("/v1/completions", R"({"prompt": "a", "logit_bias": {"5": -1e400}})", "application/json");
  EXPECT_EQ(nested_overflow->status, 400);
  EXPECT_EQ(json::parse(nested_overflow->body)["error"]["param"], "logit_bias");
  EXPECT_EQ(post(c, "/v1/chat/completions", {{"messages", "hi"}}, 400)["error"]["param"], "messages");
  EXPECT_EQ(post(c, "/tokenize", {{"content", 5}}, 400)["error"]["param"], "content");
  EXPECT_EQ(post(c, "/detokenize", {{"tokens", {1, 99999999}}}, 400)["error"]["param"], "tokens");
  const json far_bias = post(c, "/v1/completions", {{"prompt", "a"}, {"logit_bias", {{"99999999", 5}}}}, 400);
  EXPECT_EQ(far_bias["error"]["param"], "logit_bias");
  EXPECT_NE(far_bias["error"]["message"].get<std::string>().find("99999999 is outside the model's vocabulary"),
            std::string::npos);
  // A bias of 100 on one token: greedy decoding gives only that token.
  const json biased = post(c, "/v1/completions", {{"prompt", {1, 415}}, {"max_tokens", 3}, {"temperature", 0},
                                                  {"logit_bias", {{"3010", 100}}}});
  EXPECT_EQ(biased["usage"]["completion_tokens"], 3);
  const std::vector<int32_t> retokenized = post(c, "/tokenize", {{"content", biased["choices"][0]["text"]}})["tokens"];
  ASSERT_GE(retokenized.size(), 3u);  // SentencePiece may add its leading-space piece first
  EXPECT_EQ(std::vector<int32_t>(retokenized.end() - 3, retokenized.end()), (std::vector<int32_t>{3010, 3010, 3010}));
  // A prompt longer than the context: 400 with both counts.
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += " the";
  const json too_long = post(c, "/v1/completions", {{"prompt", long_prompt}}, 400);
  EXPECT_EQ(too_long["error"]["code"], "context_length_exceeded");
  EXPECT_EQ(too_long["error"]["type"], "invalid_request_error");
  EXPECT_NE(too_long["error"]["message"].get<std::string>().find("holds 128"), std::string::npos);
  // max_tokens is capped by what the context leaves.
  std::string near_full;
  for (int i = 0; i < 120; ++i) near_full += " the";
  const json capped = post(c, "/v1/completions", {{"prompt", near_full}, {"max_tokens", 500}, {"temperature", 0}});
  const int64_t prompt_tokens = capped["usage"]["prompt_tokens"];
  EXPECT_EQ(capped["usage"]["completion_tokens"], 128 - prompt_tokens);
  EXPECT_EQ(capped["choices"][0]["finish_reason"], "length");
  auto missing = c.Get("/v1/nothing");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["type"], "not_found_error");
  auto get_post_only = c.Get("/v1/completions");  // the endpoint exists, for POST
  ASSERT_TRUE(get_post_only);
  EXPECT_EQ(get_post_only->status, 405);
  EXPECT_EQ(get_post_only->get_header_value("Allow"), "POST");
  EXPECT_NE(json::parse(get_post_only->body)["error"]["message"].get<std::string>().find("takes POST requests"),
            std::string::npos);
  const std::string huge = json{{"prompt", std::string(2 << 20, 'a')}}.dump();
  auto too_big = c.Post("/v1/completions", huge, "application/json");
  EXPECT_TRUE(!too_big || too_big->status == 413);  // the server may close before the whole body is sent
  // The server is still fine.
  EXPECT_EQ(post(c, "/v1/completions", {{"prompt", "a"}, {"max_tokens", 2}})["usage"]["completion_tokens"], 2);
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeHttp, ApiKey) {
  ServeProcess server({"--api-key", "s3cret"});
  httplib::Client anonymous = server.client();
  EXPECT_EQ(anonymous.Get("/health")->status, 200);
  auto refused = anonymous.Get("/v1/models");
  EXPECT_EQ(refused->status, 401);
  EXPECT_EQ(json::parse(refused->body)["error"]["type"], "authentication_error");
  EXPECT_EQ(server.client("wrong").Get("/v1/models")->status, 401);
  EXPECT_EQ(server.client("s3cret").Get("/v1/models")->status, 200);
  const test::RunResult empty_key = test::run_difftx({"serve", kModel, "--port", "0", "--api-key", ""});
  EXPECT_EQ(empty_key.exit_code, 2);
  EXPECT_NE(empty_key.err.find("an empty key would leave the server open"), std::string::npos) << empty_key.err;
  httplib::Client lower = server.client();
  lower.set_default_headers({{"Authorization", "bearer s3cret"}});  // the scheme in any case (RFC 7235)
  EXPECT_EQ(lower.Get("/v1/models")->status, 200);
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeHttp, SixteenConcurrentClientsGetWhatTheyGetAlone) {
  ServeProcess server({"--parallel", "4"});
  std::vector<json> bodies;
  for (int i = 0; i < 16; ++i)
    bodies.push_back({{"prompt", "Chapter " + std::to_string(i + 1) + ". The"}, {"max_tokens", 12 + i % 5},
                      {"temperature", i % 2 ? 0.7 : 0.0}, {"seed", 100 + i}});
  std::vector<std::string> alone;
  for (const json& b : bodies) {
    httplib::Client c = server.client();
    alone.push_back(post(c, "/v1/completions", b)["choices"][0]["text"]);
  }
  std::vector<std::future<std::string>> together;
  for (size_t i = 0; i < bodies.size(); ++i)
    together.push_back(std::async(std::launch::async, [&, i] {
      httplib::Client c = server.client();
      return i % 3 == 0 ? streamed_text(c, "/v1/completions", bodies[i])
                        : post(c, "/v1/completions", bodies[i])["choices"][0]["text"].get<std::string>();
    }));
  for (size_t i = 0; i < bodies.size(); ++i) EXPECT_EQ(together[i].get(), alone[i]) << "client " << i;
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeHttp, FullQueueIs429AndALeavingClientFreesItsSlot) {
  ServeProcess server({"--parallel", "1", "--queue-size", "1", "--ctx-size", "2048"});
  httplib::Client watcher = server.client();
  const json long_body = {{"prompt", "The"}, {"max_tokens", 2000}, {"temperature", 0}, {"stream", true}};
  // Client A streams a long answer and hangs up after a few events.
  std::promise<void> a_started;
  std::thread a([&] {
    httplib::Client c = server.client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = long_body.dump();
    req.set_header("Content-Type", "application/json");
    int chunks = 0;
    bool told = false;
    std::promise<void>* started = &a_started;
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      if (++chunks == 3 && !told) {
        told = true;
        started->set_value();
      }
      if (chunks < 3) return true;
      std::this_thread::sleep_for(300ms);  // while B queues and C is refused
      return false;                        // hang up mid-stream
    };
    c.send(req);
  });
  a_started.get_future().wait();
  // B waits in the queue; C finds it full.
  std::future<json> b = std::async(std::launch::async, [&] {
    httplib::Client c = server.client();
    return post(c, "/v1/completions", {{"prompt", "A"}, {"max_tokens", 5}, {"temperature", 0}});
  });
  ASSERT_TRUE(metric_reaches(watcher, "difftx_queue_length 1"));
  const json c_reply = post(watcher, "/v1/completions", {{"prompt", "B"}, {"max_tokens", 5}}, 429);
  EXPECT_EQ(c_reply["error"]["type"], "rate_limit_error");
  a.join();
  // A's hang-up freed the slot: B completes, long before A's 2000 tokens.
  EXPECT_EQ(b.get()["usage"]["completion_tokens"], 5);
  ASSERT_TRUE(metric_reaches(watcher, "difftx_slots_busy 0"));
  const std::string metrics = watcher.Get("/metrics")->body;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(metrics, m, std::regex("difftx_generated_tokens_total ([0-9]+)")));
  EXPECT_LT(std::stoi(m[1]), 1000);
  EXPECT_NE(metrics.find("difftx_requests_rejected_total 1"), std::string::npos);
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeHttp, SlowClientsDoNotBlockOthers) {
  ServeProcess server;
  // 24 connections that send half a request line and then nothing.
  std::vector<int> sockets;
  for (int i = 0; i < 24; ++i) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const char partial[] = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le";
    ASSERT_GT(::send(s, partial, sizeof(partial) - 1, MSG_NOSIGNAL), 0);
    sockets.push_back(s);
  }
  const auto t0 = std::chrono::steady_clock::now();
  httplib::Client c = server.client();
  EXPECT_EQ(post(c, "/v1/completions", {{"prompt", "The"}, {"max_tokens", 4}})["usage"]["completion_tokens"], 4);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  for (int s : sockets) ::close(s);
  EXPECT_EQ(server.stop(), 0);
}

TEST(ServeHttp, SigtermLetsRequestsInFlightFinish) {
  ServeProcess server({"--parallel", "2"});
  std::vector<std::future<int>> replies;
  for (int i = 0; i < 4; ++i)
    replies.push_back(std::async(std::launch::async, [&, i] {
      httplib::Client c = server.client();
      auto r = c.Post("/v1/completions", json{{"prompt", "Part " + std::to_string(i)}, {"max_tokens", 60}}.dump(),
                      "application/json");
      if (!r) return -1;
      return r->status == 200 ? static_cast<int>(json::parse(r->body)["usage"]["completion_tokens"]) : -r->status;
    }));
  // And a streamed answer in flight: it ends with its finish chunk and [DONE], not cut off.
  std::future<std::vector<std::string>> stream = std::async(std::launch::async, [&] {
    httplib::Client c = server.client();
    return stream_events(c, "/v1/completions", {{"prompt", "Part 9"}, {"max_tokens", 80}, {"stream", true}});
  });
  // Stopped once all five requests are in (a request that arrives after SIGTERM gets 503, so
  // waiting only for two busy slots let the stream come too late on a loaded machine).
  httplib::Client watcher = server.client();
  ASSERT_TRUE(all_admitted_and_slots_busy(watcher, 5, 2));
  server.signal_stop();
  // While it finishes them, /health says it is going (a load balancer stops sending), until it is gone.
  bool said_going = false;
  for (int i = 0; i < 200 && !said_going; ++i) {
    auto health = watcher.Get("/health");
    if (!health) break;
    said_going = health->status == 503 && health->body.find("the server is shutting down") != std::string::npos;
    if (!said_going) std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(said_going) << server.log();
  EXPECT_EQ(server.wait(), 0);
  const std::vector<std::string> events = stream.get();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  // Its finish chunk: "length" after 80 tokens, or "stop" when the sampled text (no seed: a random
  // one) reached the end of sequence first; a cut stream has neither.
  const json finish = json::parse(events[events.size() - 2])["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "length" || finish == "stop") << finish;
  int finished = 0;
  for (auto& r : replies) {
    const int got = r.get();
    EXPECT_TRUE(got > 0 || got == -1) << got;  // a whole answer (60 tokens or EOS), or refused cleanly
    finished += got > 0;
  }
  EXPECT_GE(finished, 2);  // the two decoding when the signal came
  EXPECT_NE(server.log().find("stopped"), std::string::npos);
}

TEST(ServeHttp, APortInUseAndCachesBeyondMemoryAreRefused) {
  ServeProcess first;
  const test::RunResult second = test::run_difftx({"serve", kModel, "--port", std::to_string(first.port())});
  EXPECT_EQ(second.exit_code, 2);
  EXPECT_NE(second.err.find("cannot listen on 127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << second.err;
  const test::RunResult huge = test::run_difftx({"serve", kModel, "--port", "0", "--parallel", "256", "--ctx-size",
                                                 "10000000"});
  EXPECT_EQ(huge.exit_code, 2);
  EXPECT_NE(huge.err.find("the KV caches of 256 slots x 10000000 tokens need"), std::string::npos) << huge.err;
  EXPECT_NE(huge.err.find("--ctx-size 10000000 is longer than the model's max_position_embeddings (512)"),
            std::string::npos) << huge.err;
  EXPECT_EQ(huge.err.find("signal"), std::string::npos) << huge.err;
  const test::RunResult no_tokenizer =
      test::run_difftx({"serve", std::string(DIFFTX_SOURCE_DIR) + "/tests/golden/llama_mha", "--port", "0"});
  EXPECT_EQ(no_tokenizer.exit_code, 2);
  EXPECT_NE(no_tokenizer.err.find("no tokenizer.json"), std::string::npos) << no_tokenizer.err;
  EXPECT_NE(no_tokenizer.err.find("--tokenizer DIR"), std::string::npos) << no_tokenizer.err;
  EXPECT_EQ(first.stop(), 0);
}

TEST(ServeHttp, HealthIs503UntilTheModelIsServed) {
  ServeOptions o;
  o.port = 0;
  Server server(o);
  const int port = server.bind();
  server.start();
  httplib::Client c("127.0.0.1", port);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(json::parse(health->body)["error"]["type"], "unavailable_error");
  EXPECT_EQ(c.Get("/v1/models")->status, 503);
  server.stop();
}

}  // namespace
}  // namespace difftx
