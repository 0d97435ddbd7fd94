#include "serve/server.h"

#include <httplib.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <string_view>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "infer/vocab_fit.h"

namespace difftx {

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

namespace {

using json = nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, api_error_body(e.what(), e.type, e.param, e.code));
}

// The request body: a JSON object, else ApiError(400).
json parse_body(const httplib::Request& req) {
  json body;
  std::string field;  // the top-level key whose value is being read
  const auto track = [&field](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) field = parsed.get<std::string>();
    return true;
  };
  try {
    body = json::parse(req.body, track);
  } catch (const json::out_of_range& e) {  // a number such as 1e400, inside the value of `field`
    if (field.empty()) throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()));
    throw ApiError(400, fmt::format("'{}': a number is beyond the range of a double ({})", field, e.what()), field);
  } catch (const json::exception& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!body.is_object()) throw ApiError(400, fmt::format("the request body must be a JSON object, got {}", body.type_name()));
  return body;
}

// "Bearer KEY" (the scheme in any case, RFC 7235) with the server's key, compared in constant time.
bool authorized(std::string header, const std::string& key) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) header[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(header[i])));
  if (header.compare(0, kScheme.size(), kScheme) != 0) return false;
  return constant_time_equal(header.substr(kScheme.size()), key);
}

// The response streamed as server-sent events, one call of the content provider at a time.
// Counts a completion in flight while it lives.
struct InFlight {
  explicit InFlight(std::atomic<int64_t>& n) : count(n) { ++count; }
  ~InFlight() { --count; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  std::atomic<int64_t>& count;
};

struct StreamState {
  std::shared_ptr<InFlight> in_flight;
  std::shared_ptr<CompletionReply> reply;
  CompletionRequest request;
  std::string id;
  int64_t created = 0;
  bool role_sent = false;
};

}  // namespace

struct Server::Impl {
  ServeOptions options;
  httplib::Server http;
  std::thread listener;
  std::unique_ptr<ServedModel> owned;
  std::atomic<const ServedModel*> served{nullptr};
  std::atomic<uint64_t> next_id{0};
  // Completion requests being answered (a streamed one until its last event is written), and
  // whether the server is stopping: new completions then get 503 while these finish.
  std::atomic<int64_t> in_flight{0};
  std::atomic<bool> draining{false};
  std::mutex status_mutex;
  std::map<int, int64_t> statuses;  // responses by HTTP status

  void routes();
  void completion(const httplib::Request& req, httplib::Response& res, bool chat);
  std::string metrics();
  // Runs a handler, answering its ApiError, a difftx Error (400) or anything else (500) as JSON.
  template <class F>
  void guarded(httplib::Response& res, F&& f) {
    try {
      f();
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, ApiError(400, e.what()));
    } catch (const std::exception& e) {
      spdlog::error("request failed: {}", e.what());
      send_error(res, ApiError(500, e.what(), "", "server_error"));
    }
  }
};

Server::Server(const ServeOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  const int threads = options.http_threads > 0 ? options.http_threads
                                               : static_cast<int>(std::max<int64_t>(32, 4 * options.slots + 16));
  impl_->http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  impl_->http.set_payload_max_length(options.max_body_bytes);
  impl_->http.set_read_timeout(options.read_timeout_s, 0);
  impl_->http.set_write_timeout(options.read_timeout_s, 0);
  impl_->http.set_keep_alive_timeout(5);
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which lets a second server bind
  // the same port and share its connections instead of failing.
  impl_->http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
  });
  impl_->routes();
}

Server::~Server() { stop(); }

int Server::bind() {
  const ServeOptions& o = impl_->options;
  int port = o.port;
  if (port == 0) port = impl_->http.bind_to_any_port(o.host);
  else if (!impl_->http.bind_to_port(o.host, port)) port = -1;
  if (port <= 0)
    fail<ConfigError>("cannot listen on {}:{} (the address is in use, not this machine's, or not allowed)", o.host,
                      o.port);
  return port;
}

void Server::start() {
  impl_->listener = std::thread([this] { impl_->http.listen_after_bind(); });
}

void Server::serve(ServedModel served) {
  impl_->owned = std::make_unique<ServedModel>(std::move(served));
  impl_->served.store(impl_->owned.get());
}

void Server::stop() {
  // Streams would be cut by httplib's stop(): let every completion in flight end first.
  impl_->draining = true;
  while (impl_->in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (impl_->http.is_running() || impl_->listener.joinable()) impl_->http.stop();
  if (impl_->listener.joinable()) impl_->listener.join();
}

void Server::Impl::routes() {
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    {
      std::lock_guard<std::mutex> lock(status_mutex);
      ++statuses[res.status];
    }
    spdlog::info("{} {} {}", req.method, req.path, res.status);
  });
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string message = res.status == 404   ? "no such endpoint"
                                : res.status == 413 ? "the request body is larger than the server accepts"
                                                    : fmt::format("HTTP error {}", res.status);
    send_json(res, res.status, api_error_body(message, res.status == 404 ? "not_found_error" : "invalid_request_error", ""));
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, ApiError(500, "internal error", "", "server_error"));
  });
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    if (!options.api_key.empty() && !authorized(req.get_header_value("Authorization"), options.api_key)) {
      send_error(res, ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')", "",
                               "authentication_error"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (served.load() == nullptr) {
      send_error(res, ApiError(503, "the model is loading", "", "unavailable_error"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (served.load() == nullptr) send_error(res, ApiError(503, "the model is loading", "", "unavailable_error"));
    else if (draining) send_error(res, ApiError(503, "the server is shutting down", "", "unavailable_error"));
    else send_json(res, 200, {{"status", "ok"}});
  });
  const auto models = [this](const httplib::Request&, httplib::Response& res) {
    const ServedModel& m = *served.load();
    const ModelConfig& c = m.model->config();
    json meta = {{"n_vocab", c.vocab_size},
                 {"n_ctx", m.decoder->context()},
                 {"n_slots", m.decoder->slots()},
                 {"model_type", c.model_type},
                 {"differential", c.is_differential()}};
    send_json(res, 200,
              {{"object", "list"},
               {"data", json::array({{{"id", m.name}, {"object", "model"}, {"created", 0}, {"owned_by", "difftx"},
                                      {"meta", meta}}})}});
  };
  http.Get("/v1/models", models);
  http.Get("/models", models);
  for (const char* path : {"/v1/completions", "/completions"})
    http.Post(path, [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, false); });
  for (const char* path : {"/v1/chat/completions", "/chat/completions"})
    http.Post(path, [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, true); });
  // A GET where only POST is served: 405 with Allow, not "no such endpoint".
  for (const char* path : {"/v1/completions", "/completions", "/v1/chat/completions", "/chat/completions", "/tokenize",
                           "/detokenize"})
    http.Get(path, [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", "POST");
      send_error(res, ApiError(405, fmt::format("{} takes POST requests", req.path)));
    });

  http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const ServedModel& m = *served.load();
      const json body = parse_body(req);
      const auto content = body.find("content");
      if (content == body.end() || !content->is_string()) throw ApiError(400, "'content': expected a string", "content");
      EncodeOptions o;
      if (auto a = body.find("add_special"); a != body.end()) {
        if (!a->is_boolean()) throw ApiError(400, "'add_special': expected true or false", "add_special");
        o.add_special_tokens = a->get<bool>();
      }
      send_json(res, 200, {{"tokens", m.tokenizer.encode(content->get<std::string>(), o)}});
    });
  });
  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const ServedModel& m = *served.load();
      const json body = parse_body(req);
      const auto tokens = body.find("tokens");
      if (tokens == body.end() || !tokens->is_array()) throw ApiError(400, "'tokens': expected an array of token ids", "tokens");
      std::vector<int32_t> ids;
      for (const json& t : *tokens) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= m.tokenizer.vocab_size())
          throw ApiError(400, fmt::format("'tokens': {} is not a token id of this tokenizer [0, {})", t.dump(),
                                          m.tokenizer.vocab_size()),
                         "tokens");
        ids.push_back(t.get<int32_t>());
      }
      send_json(res, 200, {{"content", m.tokenizer.decode(ids)}});
    });
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4");
  });
}

void Server::Impl::completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  auto counted = std::make_shared<InFlight>(in_flight);
  guarded(res, [&] {
    if (draining) throw ApiError(503, "the server is shutting down", "", "unavailable_error");
    const ServedModel& m = *served.load();
    CompletionRequest r = parse_completion_request(parse_body(req), chat);
    const PreparedCompletion p = prepare_completion(m, r);
    std::shared_ptr<Sequence> sequence = m.decoder->submit(p.decode);
    if (!sequence)
      throw ApiError(429, "the server is busy: its request queue is full; try again later", "", "rate_limit_error");
    auto reply = std::make_shared<CompletionReply>(m, sequence, p);
    const std::string id = fmt::format("{}-{:x}{:08x}", chat ? "chatcmpl" : "cmpl", ++next_id,
                                       static_cast<uint32_t>(std::time(nullptr)));
    const auto created = static_cast<int64_t>(std::time(nullptr));
    if (!r.stream) {
      std::string text;
      while (reply->read(text, std::chrono::milliseconds(1000))) {
      }
      if (!reply->error().empty())
        throw ApiError(500, "the model failed on this request: " + reply->error(), "", "server_error");
      send_json(res, 200, completion_body(m, r, id, created, text, *reply));
      return;
    }
    auto state = std::make_shared<StreamState>(StreamState{counted, reply, std::move(r), id, created, false});
    res.set_header("Cache-Control", "no-cache");
    const ServedModel* mp = &m;
    res.set_chunked_content_provider("text/event-stream", [state, mp](size_t, httplib::DataSink& sink) {
      const auto send = [&](const json& j) {
        const std::string event = "data: " + dump(j) + "\n\n";
        return sink.write(event.data(), event.size());
      };
      const CompletionRequest& r = state->request;
      if (r.chat && !state->role_sent) {
        if (!send(completion_chunk(*mp, r, state->id, state->created, "", nullptr, true))) return false;
        state->role_sent = true;
      }
      std::string text;
      const bool more = state->reply->read(text, std::chrono::milliseconds(1000));
      if (!text.empty() && !send(completion_chunk(*mp, r, state->id, state->created, text, nullptr))) return false;
      if (more) {
        // A comment line while nothing came (queued): a client that left is found at once.
        static constexpr char kPing[] = ": ping\n\n";
        return !text.empty() || sink.write(kPing, sizeof(kPing) - 1);
      }
      if (!state->reply->error().empty()) {
        if (!send(api_error_body("the model failed on this request: " + state->reply->error(), "server_error", "")))
          return false;
      } else {
        if (!send(completion_chunk(*mp, r, state->id, state->created, "", state->reply->finish_reason())))
          return false;
        if (r.include_usage) {
          json last = completion_chunk(*mp, r, state->id, state->created, "", nullptr);
          last["choices"] = json::array();
          last["usage"] = usage_body(*state->reply);
          if (!send(last)) return false;
        }
      }
      static constexpr char kDone[] = "data: [DONE]\n\n";
      if (!sink.write(kDone, sizeof(kDone) - 1)) return false;
      sink.done();
      return true;
    });
  });
}

std::string Server::Impl::metrics() {
  const ServedModel* m = served.load();
  std::string out;
  const auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  if (m) {
    const BatchDecoderStats s = m->decoder->stats();
    metric("difftx_requests_finished_total", "counter", "Completion requests finished (any reason).",
           s.requests_finished);
    metric("difftx_requests_rejected_total", "counter", "Completion requests refused with 429 (queue full).",
           s.requests_rejected);
    metric("difftx_prompt_tokens_total", "counter", "Prompt tokens prefilled.", s.prompt_tokens);
    metric("difftx_generated_tokens_total", "counter", "Tokens generated.", s.generated_tokens);
    metric("difftx_decode_steps_total", "counter", "Batched decode steps run.", s.decode_steps);
    metric("difftx_queue_length", "gauge", "Requests waiting for a slot.", s.queued);
    metric("difftx_slots_busy", "gauge", "Slots decoding or prefilling a request.", s.active);
    metric("difftx_slots", "gauge", "Slots (--parallel).", s.slots);
    metric("difftx_generated_tokens_per_second", "gauge", "Tokens generated per second over the last 10 s of decoding.",
           fmt::format("{:.3f}", s.generated_tokens_per_second));
  }
  std::lock_guard<std::mutex> lock(status_mutex);
  out += "# HELP difftx_http_responses_total HTTP responses by status.\n# TYPE difftx_http_responses_total counter\n";
  for (const auto& [status, count] : statuses)
    out += fmt::format("difftx_http_responses_total{{status=\"{}\"}} {}\n", status, count);
  return out;
}

}  // namespace difftx
