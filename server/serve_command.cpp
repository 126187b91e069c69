#include "server/serve_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <thread>

#include "common/log.h"
#include "engine/chat/chat_formatter.h"
#include "engine/models/loader.h"
#include "engine/runtime/engine.h"
#include "frontend/engine_metrics.h"
#include "frontend/metrics.h"
#include "frontend/openai_request.h"
#include "frontend/text_stream.h"
#include "kernels/cpu/thread_pool.h"
#include "server/http_server.h"
#include "server/model_path.h"
#include "server/version.h"

namespace sluice::server {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HttpResponse api_error(const frontend::ApiError& e) {
  return error_response(e.http_status, e.type, e.message,
                        e.param ? std::optional<std::string_view>(*e.param) : std::nullopt,
                        e.code ? std::optional<std::string_view>(*e.code) : std::nullopt);
}

HttpResponse bad_request(std::string_view message, std::string_view param) {
  return error_response(400, "invalid_request_error", message, param);
}

// Everything the handlers share. Immutable after start-up except the engine and metrics,
// which are thread-safe.
struct ServeState {
  std::string served_name;
  int64_t created = 0;
  int max_model_len = 0;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;  // null: token-id prompts only
  std::optional<chat::ChatFormatter> formatter;     // with a tokenizer only
  models::GenerationDefaults defaults;              // generation_config.json sampling
  frontend::RequestLimits limits;
  std::unique_ptr<engine::Engine> engine;
  frontend::Registry registry;
  std::optional<frontend::EngineMetrics> metrics;
  HttpServer* server = nullptr;
  std::string api_key;
  int max_queued_requests = 0;

  // Cumulative engine counters already added to the metrics (collect hook).
  std::mutex collect_mu;
  int64_t seen_prefix_queries = 0, seen_prefix_hits = 0, seen_preemptions = 0;

  json model_card() const {
    return {{"id", served_name},
            {"object", "model"},
            {"created", created},
            {"owned_by", "sluice"},
            {"root", served_name},
            {"max_model_len", max_model_len}};
  }
};

std::string_view reason_name(scheduler::FinishReason r) {
  switch (r) {
    case scheduler::FinishReason::kStop: return "stop";
    case scheduler::FinishReason::kLength: return "length";
    case scheduler::FinishReason::kAbort: return "abort";
  }
  return "abort";
}

// One API request: one engine request per prompt (completions may carry several), n
// choices each. The engine thread pushes deltas into a queue (push() only enqueues); the
// connection's io thread turns them into text and JSON in take(), which is the only place
// choice state changes. Choice index = prompt index * n + engine choice, as OpenAI numbers
// them.
class CompletionJob final : public PendingBody, public std::enable_shared_from_this<CompletionJob> {
 public:
  struct Sub {
    RequestId id;
    int32_t prompt_tokens = 0;
    int32_t open_choices = 0;
  };

  CompletionJob(ServeState& st, frontend::ParsedRequest parsed, std::string request_id,
                std::shared_ptr<const frontend::StopStrings> stops)
      : st_(st), req_(std::move(parsed)), request_id_(std::move(request_id)), stops_(std::move(stops)),
        chat_(req_.endpoint == frontend::Endpoint::kChatCompletions), start_(Clock::now()) {}

  // Submits one prompt to the engine (before the job is handed to the connection).
  void submit(std::vector<TokenId> prompt_ids) {
    const int sub_index = static_cast<int>(subs_.size());
    Sub sub;
    sub.prompt_tokens = static_cast<int32_t>(prompt_ids.size());
    sub.open_choices = req_.n;
    for (int32_t c = 0; c < req_.n; ++c) {
      Choice ch;
      if (st_.tokenizer) {
        frontend::TextStreamOptions o;
        o.skip_special_tokens = req_.skip_special_tokens;
        ch.text_stream = std::make_unique<frontend::TextStream>(*st_.tokenizer, stops_, o);
      }
      choices_.push_back(std::move(ch));
    }
    subs_.push_back(sub);
    engine::Request r = frontend::to_engine_request(req_, std::move(prompt_ids));
    auto sink = std::make_shared<Sink>(weak_from_this(), sub_index);
    subs_.back().id = st_.engine->submit(std::move(r), std::move(sink));
  }

  // Called once all prompts are submitted: from then on take() may complete.
  void start() { open_ = static_cast<int>(choices_.size()); }

  void on_ready(std::function<void()> wake) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) {
        wake_ = std::move(wake);
        return;
      }
    }
    wake();
  }

  bool take(std::string* out) override {
    std::deque<Queued> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(queue_);
    }
    for (Queued& q : batch) apply(q.sub, q.at, q.delta, out);
    if (open_ > 0 || done_) return done_;
    done_ = true;
    finish_request(out);
    return true;
  }

  void cancel() override {
    cancelled_ = true;
    for (const Sub& s : subs_) st_.engine->abort(s.id);
    int unfinished = 0;
    for (const Choice& ch : choices_) unfinished += ch.finished ? 0 : 1;
    st_.metrics->request_success_for("abort").inc(unfinished);
    SLUICE_LOG_INFO("request {} aborted: the client went away ({} choices unfinished, {:.1f} ms)",
                    request_id_, unfinished,
                    std::chrono::duration<double, std::milli>(Clock::now() - start_).count());
  }

  int final_status() const override { return status_; }

 private:
  struct Choice {
    std::unique_ptr<frontend::TextStream> text_stream;
    std::string text;  // non-streamed: all of it
    std::vector<TokenId> token_ids;
    int32_t completion_tokens = 0;
    bool finished = false;
    bool sent_role = false;  // chat streams: the first chunk carries the role
    std::optional<Clock::time_point> last_token_at;
    std::string finish_reason;
  };

  class Sink final : public engine::OutputSink {
   public:
    Sink(std::weak_ptr<CompletionJob> job, int sub) : job_(std::move(job)), sub_(sub) {}
    void push(engine::Delta d) override {
      if (auto job = job_.lock()) job->enqueue(sub_, std::move(d));
    }

   private:
    std::weak_ptr<CompletionJob> job_;
    int sub_;
  };

  void enqueue(int sub, engine::Delta d) {
    std::function<void()> wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(Queued{sub, Clock::now(), std::move(d)});
      wake.swap(wake_);
    }
    if (wake) wake();
  }

  void apply(int sub_index, Clock::time_point at, engine::Delta& d, std::string* out) {
    Sub& sub = subs_[static_cast<size_t>(sub_index)];
    const int index = sub_index * req_.n + d.choice;
    if (d.choice < 0 || d.choice >= req_.n) return;
    Choice& ch = choices_[static_cast<size_t>(index)];
    if (ch.finished) return;  // ended by a stop string; the engine is still catching up
    std::string piece;
    bool stopped = false;
    const size_t ids_before = ch.token_ids.size();
    if (!d.token_ids.empty()) {
      if (!first_token_) {
        first_token_ = at;
        st_.metrics->time_to_first_token->observe(std::chrono::duration<double>(at - start_).count());
      }
      if (ch.last_token_at) {
        st_.metrics->inter_token_latency->observe(
            std::chrono::duration<double>(at - *ch.last_token_at).count());
      }
      ch.last_token_at = at;
    }
    for (TokenId id : d.token_ids) {
      ++ch.completion_tokens;
      ch.token_ids.push_back(id);
      if (ch.text_stream &&
          ch.text_stream->push(id, ch.completion_tokens > req_.sampling.min_tokens, &piece)) {
        stopped = true;
        break;
      }
    }
    std::optional<std::string> reason;
    if (stopped) {
      reason = "stop";
    } else if (d.finish_reason) {
      reason = std::string(reason_name(*d.finish_reason));
      if (ch.text_stream && ch.text_stream->finish(&piece)) reason = "stop";
      if (*d.finish_reason == scheduler::FinishReason::kAbort && !cancelled_) {
        // Not ours: the engine refused or failed the request (its log says why).
        status_ = 500;
        engine_failed_ = true;
      }
    }
    if (reason) {
      ch.finished = true;
      ch.finish_reason = *reason;
      --open_;
      // Every choice of this engine request has ended: one a stop string ended may still be
      // generating in the engine (aborting a finished request is a no-op).
      if (--sub.open_choices == 0) st_.engine->abort(sub.id);
    }
    if (req_.stream) {
      const std::span<const TokenId> new_ids(ch.token_ids.data() + ids_before,
                                             ch.token_ids.size() - ids_before);
      if (!piece.empty() || reason || !new_ids.empty() || (chat_ && !ch.sent_role)) {
        emit_chunk(index, ch, piece, new_ids, reason, out);
      }
    } else {
      ch.text += piece;
    }
  }

  json base(std::string_view object) const {
    return {{"id", (chat_ ? "chatcmpl-" : "cmpl-") + request_id_},
            {"object", object},
            {"created", created_},
            {"model", st_.served_name}};
  }

  json usage() const {
    int64_t prompt = 0, completion = 0;
    for (const Sub& s : subs_) prompt += s.prompt_tokens;
    for (const Choice& c : choices_) completion += c.completion_tokens;
    return {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion}};
  }

  // One SSE event for choice `index`: its new text (and, without a tokenizer, its new ids).
  void emit_chunk(int index, Choice& ch, const std::string& piece, std::span<const TokenId> new_ids,
                  const std::optional<std::string>& reason, std::string* out) {
    json c = {{"index", index}, {"logprobs", nullptr},
              {"finish_reason", reason ? json(*reason) : json(nullptr)}};
    if (chat_) {
      json delta = json::object();
      if (!ch.sent_role) {
        delta["role"] = "assistant";
        ch.sent_role = true;
      }
      if (!piece.empty() || delta.empty()) delta["content"] = piece;
      c["delta"] = std::move(delta);
    } else {
      c["text"] = piece;
      if (!st_.tokenizer) c["token_ids"] = std::vector<TokenId>(new_ids.begin(), new_ids.end());
    }
    json chunk = base(chat_ ? "chat.completion.chunk" : "text_completion");
    chunk["choices"] = json::array({std::move(c)});
    if (req_.include_usage) chunk["usage"] = nullptr;
    *out += "data: " + dump(chunk) + "\n\n";
  }

  void finish_request(std::string* out) {
    const json u = usage();
    if (req_.stream) {
      if (engine_failed_) {
        *out += "data: " +
                dump({{"error",
                       {{"message", "The engine aborted the request"},
                        {"type", "server_error"}, {"param", nullptr}, {"code", nullptr}}}}) +
                "\n\n";
      } else if (req_.include_usage) {
        json chunk = base(chat_ ? "chat.completion.chunk" : "text_completion");
        chunk["choices"] = json::array();
        chunk["usage"] = u;
        *out += "data: " + dump(chunk) + "\n\n";
      }
      *out += "data: [DONE]\n\n";
    } else if (engine_failed_) {
      *out += dump({{"error",
                     {{"message", "The engine aborted the request"},
                      {"type", "server_error"}, {"param", nullptr}, {"code", nullptr}}}});
    } else {
      json choices = json::array();
      for (size_t i = 0; i < choices_.size(); ++i) {
        const Choice& ch = choices_[i];
        json c = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", ch.finish_reason}};
        if (chat_) {
          c["message"] = {{"role", "assistant"}, {"content", ch.text}};
        } else {
          c["text"] = ch.text;
          if (!st_.tokenizer) c["token_ids"] = ch.token_ids;
        }
        choices.push_back(std::move(c));
      }
      json body = base(chat_ ? "chat.completion" : "text_completion");
      body["choices"] = std::move(choices);
      body["usage"] = u;
      *out += dump(body);
    }
    // Metrics and the request's log line.
    const double total = std::chrono::duration<double>(Clock::now() - start_).count();
    frontend::EngineMetrics& m = *st_.metrics;
    m.prompt_tokens->inc(static_cast<double>(u["prompt_tokens"].get<int64_t>()));
    m.generation_tokens->inc(static_cast<double>(u["completion_tokens"].get<int64_t>()));
    m.e2e_request_latency->observe(total);
    std::string reasons;
    for (const Choice& ch : choices_) {
      const std::string_view r = engine_failed_ ? std::string_view("error") : ch.finish_reason;
      m.request_success_for(r).inc();
      if (reasons.find(r) == std::string::npos) reasons += (reasons.empty() ? "" : ",") + std::string(r);
    }
    const double ttft = first_token_ ? std::chrono::duration<double>(*first_token_ - start_).count() : 0.0;
    SLUICE_LOG_INFO("request {} done: prompt_tokens={} completion_tokens={} ttft_ms={:.1f} "
                    "total_ms={:.1f} finish_reason={}",
                    request_id_, u["prompt_tokens"].get<int64_t>(),
                    u["completion_tokens"].get<int64_t>(), ttft * 1e3, total * 1e3, reasons);
  }

  ServeState& st_;
  frontend::ParsedRequest req_;
  std::string request_id_;
  std::shared_ptr<const frontend::StopStrings> stops_;
  const bool chat_;
  const Clock::time_point start_;
  const int64_t created_ = unix_now();
  std::optional<Clock::time_point> first_token_;

  // io thread only (take/cancel run on the connection's strand):
  std::vector<Sub> subs_;
  std::vector<Choice> choices_;
  int open_ = 0;  // choices without a finish reason yet (set by start())
  bool done_ = false;
  bool cancelled_ = false;
  bool engine_failed_ = false;
  int status_ = 200;

  std::mutex mu_;  // guards the fields below (the engine thread enqueues)
  struct Queued {
    int sub;
    Clock::time_point at;  // when the engine pushed it (latency metrics)
    engine::Delta delta;
  };
  std::deque<Queued> queue_;
  std::function<void()> wake_;
};

// The model's generation_config.json sampling defaults, for the parameters the request
// leaves out (or sets to null), as vLLM applies them. parse_request fills absent ones with
// the API's own defaults, so presence is read from the (already validated) body.
void apply_generation_defaults(const ServeState& st, std::string_view body,
                               frontend::ParsedRequest& req) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto absent = [&](const char* key) { return !j.is_object() || !j.contains(key) || j[key].is_null(); };
  if (st.defaults.temperature && absent("temperature")) req.sampling.temperature = *st.defaults.temperature;
  if (st.defaults.top_p && absent("top_p")) req.sampling.top_p = *st.defaults.top_p;
  if (st.defaults.top_k && absent("top_k")) req.sampling.top_k = *st.defaults.top_k;
}

HttpResponse handle_generate(ServeState& st, frontend::Endpoint endpoint, const HttpRequest& http) {
  if (st.max_queued_requests > 0 &&
      st.engine->stats().num_waiting_requests >= st.max_queued_requests) {
    // The stats lag one engine step, so the bound is approximate by a step's arrivals.
    HttpResponse r = error_response(503, "service_unavailable",
                                    "The server is at capacity; retry shortly");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  auto parsed_or = frontend::parse_request(endpoint, http.body, st.limits);
  if (auto* e = std::get_if<frontend::ApiError>(&parsed_or)) return api_error(*e);
  frontend::ParsedRequest req = std::move(std::get<frontend::ParsedRequest>(parsed_or));
  if (!req.model.empty() && req.model != st.served_name) {
    return error_response(404, "invalid_request_error",
                          fmt::format("The model `{}` does not exist.",
                                      req.model.size() > 64 ? req.model.substr(0, 64) + "..." : req.model),
                          "model", "model_not_found");
  }
  apply_generation_defaults(st, http.body, req);
  // Not served yet: refuse rather than answer without them.
  if (req.sampling.logprobs >= 0) return bad_request("logprobs are not supported yet", "logprobs");
  if (req.echo) return bad_request("echo is not supported yet", "echo");

  std::vector<std::vector<TokenId>> prompts;
  if (endpoint == frontend::Endpoint::kChatCompletions) {
    if (!st.tokenizer) {
      return bad_request("This model has no tokenizer: only token-id prompts on /v1/completions",
                         "messages");
    }
    chat::ChatRenderOptions ro;
    ro.enable_thinking = req.enable_thinking;
    auto rendered = st.formatter->render(req.messages, ro);
    if (!rendered.is_ok()) return bad_request(rendered.status().message(), "messages");
    prompts.push_back(st.tokenizer->encode(*rendered, /*add_bos=*/false, /*parse_special=*/true));
  } else {
    for (const frontend::PromptInput& p : req.prompts) {
      if (p.text) {
        if (!st.tokenizer) {
          return bad_request("This model has no tokenizer: give the prompt as token ids", "prompt");
        }
        prompts.push_back(
            st.tokenizer->encode(*p.text, st.tokenizer->add_bos_default(), /*parse_special=*/false));
      } else {
        prompts.push_back(p.token_ids);
      }
    }
  }
  if (!req.stop.empty() && !st.tokenizer) {
    return bad_request("This model has no tokenizer: stop strings cannot be matched", "stop");
  }
  for (const auto& p : prompts) {
    if (auto e = frontend::check_context(req, static_cast<int>(p.size()), st.limits)) return api_error(*e);
  }
  std::shared_ptr<const frontend::StopStrings> stops;
  if (!req.stop.empty()) {
    auto compiled = frontend::StopStrings::compile(req.stop);
    if (!compiled.is_ok()) return bad_request(compiled.status().message(), "stop");
    stops = *compiled;
  }

  const bool stream = req.stream;
  auto job = std::make_shared<CompletionJob>(st, std::move(req), http.request_id, std::move(stops));
  for (auto& p : prompts) job->submit(std::move(p));
  job->start();
  HttpResponse r;
  r.pending = job;
  r.streamed = stream;
  r.content_type = stream ? "text/event-stream" : "application/json";
  return r;
}

HttpResponse json_response(const json& j) {
  HttpResponse r;
  r.body = dump(j);
  return r;
}

// POST /tokenize (vLLM's shape): {"prompt": str, "add_special_tokens": bool = true} or a
// chat body {"messages": [...]} (rendered with the chat template, as a chat request is)
// -> {"count", "max_model_len", "tokens"}.
HttpResponse handle_tokenize(ServeState& st, const HttpRequest& http) {
  const json j = json::parse(http.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return bad_request("The body must be a JSON object", "body");
  if (!st.tokenizer) return bad_request("This model has no tokenizer", "prompt");
  if (j.contains("model") && !j["model"].is_null() &&
      (!j["model"].is_string() || j["model"].get<std::string>() != st.served_name)) {
    return error_response(404, "invalid_request_error", "The model does not exist.", "model",
                          "model_not_found");
  }
  std::vector<TokenId> ids;
  if (j.contains("messages")) {
    auto parsed = frontend::parse_request(frontend::Endpoint::kChatCompletions, http.body, st.limits);
    if (auto* e = std::get_if<frontend::ApiError>(&parsed)) return api_error(*e);
    const auto& req = std::get<frontend::ParsedRequest>(parsed);
    chat::ChatRenderOptions ro;
    ro.enable_thinking = req.enable_thinking;
    if (j.contains("add_generation_prompt")) {
      if (!j["add_generation_prompt"].is_boolean()) {
        return bad_request("add_generation_prompt must be a boolean", "add_generation_prompt");
      }
      ro.add_generation_prompt = j["add_generation_prompt"].get<bool>();
    }
    auto rendered = st.formatter->render(req.messages, ro);
    if (!rendered.is_ok()) return bad_request(rendered.status().message(), "messages");
    ids = st.tokenizer->encode(*rendered, /*add_bos=*/false, /*parse_special=*/true);
  } else {
    if (!j.contains("prompt") || !j["prompt"].is_string()) {
      return bad_request("prompt must be a string (or give messages)", "prompt");
    }
    bool add_special = true;
    if (j.contains("add_special_tokens")) {
      if (!j["add_special_tokens"].is_boolean()) {
        return bad_request("add_special_tokens must be a boolean", "add_special_tokens");
      }
      add_special = j["add_special_tokens"].get<bool>();
    }
    ids = st.tokenizer->encode(j["prompt"].get<std::string>(),
                               add_special && st.tokenizer->add_bos_default(), /*parse_special=*/false);
  }
  return json_response({{"count", ids.size()}, {"max_model_len", st.max_model_len}, {"tokens", ids}});
}

// POST /detokenize (vLLM's shape): {"tokens": [int]} -> {"prompt": str}.
HttpResponse handle_detokenize(ServeState& st, const HttpRequest& http) {
  const json j = json::parse(http.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return bad_request("The body must be a JSON object", "body");
  if (!st.tokenizer) return bad_request("This model has no tokenizer", "tokens");
  if (!j.contains("tokens") || !j["tokens"].is_array()) return bad_request("tokens must be an array", "tokens");
  std::vector<TokenId> ids;
  for (const json& t : j["tokens"]) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= st.limits.vocab_size) {
      return bad_request(fmt::format("tokens must be integers in [0, {})", st.limits.vocab_size), "tokens");
    }
    ids.push_back(static_cast<TokenId>(t.get<int64_t>()));
  }
  return json_response({{"prompt", st.tokenizer->decode(ids)}});
}

// Compares without an early exit, so the time taken does not tell how much of a key matched
// (only whether the length did).
bool same_secret(std::string_view given, std::string_view key) {
  if (given.size() != key.size() || key.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i]);
  return diff == 0;
}

// `handler` behind the --api-key check (INTERFACES.md, "Auth matrix"): 401 without
// "Authorization: Bearer KEY".
Handler with_auth(const ServeState& st, Handler handler) {
  if (st.api_key.empty()) return handler;
  return [&st, handler = std::move(handler)](const HttpRequest& req) {
    const auto auth = req.header("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (!auth || auth->size() < kBearer.size() || auth->substr(0, kBearer.size()) != kBearer ||
        !same_secret(auth->substr(kBearer.size()), st.api_key)) {
      return error_response(401, "authentication_error", "Incorrect or missing API key",
                            std::nullopt, "invalid_api_key");
    }
    return handler(req);
  };
}

void add_routes(HttpServer& server, ServeState& st) {
  server.route(
      "GET", "/health",
      [](const HttpRequest&) {
        HttpResponse r;
        r.content_type = "text/plain";
        return r;
      },
      /*while_draining=*/true);
  server.route("GET", "/ready", [&st](const HttpRequest&) {
    if (st.server->draining()) {
      HttpResponse r = error_response(503, "service_unavailable", "The server is shutting down");
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    return json_response({{"status", "ready"}, {"model", st.served_name}});
  }, /*while_draining=*/true);
  server.route("GET", "/version", [](const HttpRequest&) {
    return json_response({{"version", version()}});
  });
  server.route("GET", "/metrics", [&st](const HttpRequest&) {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = st.registry.render();
    return r;
  });
  server.route("GET", "/v1/models", with_auth(st, [&st](const HttpRequest&) {
    return json_response({{"object", "list"}, {"data", json::array({st.model_card()})}});
  }));
  server.route("GET", "/v1/models/*", with_auth(st, [&st](const HttpRequest& req) {
    const std::string id = req.path.substr(std::string_view("/v1/models/").size());
    if (id != st.served_name) {
      return error_response(404, "invalid_request_error",
                            fmt::format("The model `{}` does not exist.",
                                        id.size() > 64 ? id.substr(0, 64) + "..." : id),
                            "model", "model_not_found");
    }
    return json_response(st.model_card());
  }));
  server.route("POST", "/tokenize",
               with_auth(st, [&st](const HttpRequest& req) { return handle_tokenize(st, req); }));
  server.route("POST", "/detokenize",
               with_auth(st, [&st](const HttpRequest& req) { return handle_detokenize(st, req); }));
  server.route("POST", "/v1/completions", with_auth(st, [&st](const HttpRequest& req) {
    return handle_generate(st, frontend::Endpoint::kCompletions, req);
  }));
  server.route("POST", "/v1/chat/completions", with_auth(st, [&st](const HttpRequest& req) {
    return handle_generate(st, frontend::Endpoint::kChatCompletions, req);
  }));
}

int fail(const std::string& message, int code) {
  std::fprintf(stderr, "sluice serve: %s\n", message.c_str());
  return code;
}

}  // namespace

CLI::App* add_serve_command(CLI::App& app, ServeOptions& o) {
  CLI::App* s = app.add_subcommand("serve", "Serve the OpenAI-compatible HTTP API");
  s->add_option("--model", o.model, "GGUF file, Hugging Face directory, or 'default'")
      ->capture_default_str();
  s->add_option("--served-model-name", o.served_model_name,
                "The model id clients use (default: the model's base name)");
  s->add_option("--host", o.host, "Address to listen on")->capture_default_str();
  s->add_option("--port", o.port, "HTTP port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  s->add_option("--max-model-len", o.max_model_len, "Context length cap (0: the model's)")
      ->check(CLI::Range(0, 1 << 24));
  s->add_option("--max-num-seqs", o.max_num_seqs, "Sequences running at once")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  s->add_option("--max-num-batched-tokens", o.max_num_batched_tokens, "Tokens per engine step")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  s->add_option("--kv-cache-memory-bytes", o.kv_cache_memory_bytes, "KV cache size (CPU)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
      ->capture_default_str();
  s->add_option("--block-size", o.block_size, "KV cache block size in tokens")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  s->add_option("--threads", o.threads, "CPU threads for the model (0: all cores)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  s->add_option("--io-threads", o.io_threads, "Threads running the HTTP event loop")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  s->add_option("--drain-timeout", o.drain_timeout,
                "Seconds in-flight requests get to finish after SIGINT/SIGTERM")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  s->add_option("--idle-timeout", o.idle_timeout,
                "Seconds a connection may take to send a whole request (idle keep-alive included)")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  s->add_option("--api-key", o.api_key,
                "Require 'Authorization: Bearer KEY' on /v1/*, /tokenize and /detokenize");
  s->add_option("--max-queued-requests", o.max_queued_requests,
                "Waiting requests before new ones get 503 + Retry-After (0: unlimited)")
      ->check(CLI::Range(0, 1 << 24))
      ->capture_default_str();
  s->add_option("--max-request-body-bytes", o.max_request_body_bytes, "Larger bodies get 413")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 32))
      ->capture_default_str();
  s->add_option("--max-header-bytes", o.max_header_bytes, "Larger headers get 431")
      ->check(CLI::Range(int64_t{256}, int64_t{1} << 24))
      ->capture_default_str();
  return s;
}

int run_serve(const ServeOptions& o) {
  kernels::cpu::set_num_threads(o.threads > 0 ? o.threads
                                              : static_cast<int>(std::thread::hardware_concurrency()));
  auto path = resolve_model_path(o.model);
  if (!path.is_ok()) return fail(path.status().message(), 2);
  auto loaded_or = models::load_model(*path, models::LoadOptions{}, kernels::cpu_ops());
  if (!loaded_or.is_ok()) return fail(loaded_or.status().message(), 2);
  models::LoadedModel& lm = *loaded_or;
  const models::ModelConfig cfg = lm.model->config();
  SLUICE_LOG_INFO("loaded {} ({})", lm.path, cfg.summary());

  ServeState st;
  st.served_name = o.served_model_name.empty() ? lm.name : o.served_model_name;
  st.created = unix_now();
  st.max_model_len = cfg.max_position_embeddings;
  if (o.max_model_len > 0) st.max_model_len = std::min(st.max_model_len, o.max_model_len);
  st.tokenizer = std::move(lm.tokenizer);
  if (st.tokenizer) {
    auto formatter = chat::ChatFormatter::create(lm.chat_template);
    if (!formatter.is_ok()) {
      return fail(fmt::format("{}: chat template: {}", lm.path, formatter.status().message()), 2);
    }
    st.formatter.emplace(std::move(*formatter));
  }
  st.defaults = lm.defaults;
  st.api_key = o.api_key;
  st.max_queued_requests = o.max_queued_requests;
  st.limits.vocab_size = cfg.vocab_size;
  st.limits.max_model_len = st.max_model_len;
  st.limits.max_n = std::min(16, o.max_num_seqs);

  engine::EngineConfig ec;
  ec.block_size = o.block_size;
  ec.kv_cache_memory_bytes = static_cast<uint64_t>(o.kv_cache_memory_bytes);
  ec.max_num_seqs = o.max_num_seqs;
  ec.max_num_batched_tokens = o.max_num_batched_tokens;
  ec.max_model_len = st.max_model_len;
  ec.eos_token_ids = lm.defaults.stop_token_ids;
  auto engine_or = engine::Engine::create(std::move(lm.model), ec);
  if (!engine_or.is_ok()) return fail(engine_or.status().message(), 1);
  st.engine = std::move(engine_or).value();

  st.metrics.emplace(frontend::register_engine_metrics(st.registry, st.served_name));
  {
    const engine::EngineStats s0 = st.engine->stats();
    int64_t blocks = 0;
    for (int32_t b : s0.kv_blocks_total) blocks = std::max<int64_t>(blocks, b);
    st.metrics->set_cache_config(o.block_size, blocks);
  }
  st.registry.add_collect_hook([&st] {
    const engine::EngineStats s = st.engine->stats();
    frontend::EngineMetrics& m = *st.metrics;
    m.num_requests_running->set(s.num_running_requests);
    m.num_requests_waiting->set(s.num_waiting_requests);
    m.kv_cache_usage_perc->set(s.kv_usage);
    // Engine counters are cumulative: add what is new since the last scrape.
    std::lock_guard<std::mutex> lock(st.collect_mu);
    auto add = [](frontend::Counter* c, int64_t now, int64_t& seen) {
      if (now > seen) c->inc(static_cast<double>(now - seen));
      seen = std::max(seen, now);
    };
    add(m.prefix_cache_queries, s.prefix_query_tokens, st.seen_prefix_queries);
    add(m.prefix_cache_hits, s.prefix_hit_tokens, st.seen_prefix_hits);
    add(m.num_preemptions, s.num_preemptions, st.seen_preemptions);
  });

  HttpServerOptions ho;
  ho.host = o.host;
  ho.port = static_cast<uint16_t>(o.port);
  ho.io_threads = o.io_threads;
  ho.max_body_bytes = static_cast<size_t>(o.max_request_body_bytes);
  ho.max_header_bytes = static_cast<size_t>(o.max_header_bytes);
  ho.drain_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout * 1000.0));
  ho.idle_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.idle_timeout * 1000.0));
  HttpServer server(ho);
  st.server = &server;
  add_routes(server, st);
  if (auto err = server.start()) {
    st.engine->stop();
    return fail(*err, 1);
  }
  SLUICE_LOG_INFO("serving {} on http://{}:{}", st.served_name, o.host, server.port());
  server.run();
  // The io threads are done; stop the engine before the server (and the pending responses
  // in its event loop) goes away, so no delta is pushed into a dead event loop.
  st.engine->stop();
  SLUICE_LOG_INFO("drained; exiting");
  return 0;
}

}  // namespace sluice::server
