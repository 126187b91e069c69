#include "server/openai_http.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "frontend/utf8.h"
#include "server/generation.h"

namespace sluice::server {
namespace {

using json = nlohmann::json;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HttpResponse json_response(const json& j) {
  HttpResponse r;
  r.body = dump(j);
  return r;
}

HttpResponse bad_request(std::string_view message, std::string_view param) {
  return error_response(400, "invalid_request_error", message, param);
}

json model_card(const ServeContext& ctx) {
  return {{"id", ctx.served_name},
          {"object", "model"},
          {"created", ctx.created},
          {"owned_by", "sluice"},
          {"root", ctx.served_name},
          {"max_model_len", ctx.max_model_len}};
}

// JSON has no infinity: an impossible token reports OpenAI's floor.
double json_logprob(float lp) { return std::isfinite(lp) ? static_cast<double>(lp) : -9999.0; }

// How a token is named in logprobs: its text, or "bytes:\xNN..." when its bytes are not
// valid UTF-8 on their own.
struct TokenName {
  std::string name;
  std::vector<int> bytes;
};

TokenName token_name(const tokenizer::Tokenizer* tok, TokenId id) {
  TokenName t;
  if (!tok) {
    t.name = fmt::format("token_id:{}", id);
    return t;
  }
  std::string raw;
  tok->append_token_text(id, /*render_special=*/true, &raw);
  for (unsigned char c : raw) t.bytes.push_back(c);
  if (frontend::is_valid_utf8(raw)) {
    t.name = std::move(raw);
  } else {
    t.name = "bytes:";
    for (unsigned char c : raw) t.name += fmt::format("\\x{:02x}", c);
  }
  return t;
}

// One chat logprobs entry: {"token", "logprob", "bytes", "top_logprobs": [...]}.
json chat_logprob_entry(const tokenizer::Tokenizer* tok, const sampling::SampleLogprobs& lp) {
  const TokenName chosen = token_name(tok, lp.chosen.token);
  json top = json::array();
  for (const sampling::TokenLogprob& alt : lp.top) {
    TokenName n = token_name(tok, alt.token);
    top.push_back({{"token", std::move(n.name)}, {"logprob", json_logprob(alt.logprob)}, {"bytes", n.bytes}});
  }
  return {{"token", chosen.name},
          {"logprob", json_logprob(lp.chosen.logprob)},
          {"bytes", chosen.bytes},
          {"top_logprobs", std::move(top)}};
}

// Completions logprobs, accumulated per choice (streamed: per chunk).
struct CompletionLogprobs {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       text_offset = json::array();

  // `lp` null: the first prompt token, which has no logprob.
  void add(const tokenizer::Tokenizer* tok, TokenId id, const sampling::SampleLogprobs* lp,
           int64_t* offset) {
    TokenName n = token_name(tok, id);
    text_offset.push_back(*offset);
    // Offsets index the returned text, where control tokens (<bos>) do not appear.
    if (tok) {
      std::string shown;
      tok->append_token_text(id, /*render_special=*/false, &shown);
      *offset += static_cast<int64_t>(shown.size());
    }
    tokens.push_back(std::move(n.name));
    if (!lp) {
      token_logprobs.push_back(nullptr);
      top_logprobs.push_back(nullptr);
      return;
    }
    token_logprobs.push_back(json_logprob(lp->chosen.logprob));
    json top = json::object();
    for (const sampling::TokenLogprob& alt : lp->top) {
      top[token_name(tok, alt.token).name] = json_logprob(alt.logprob);
    }
    top_logprobs.push_back(std::move(top));
  }
  json to_json() const {
    return {{"tokens", tokens},
            {"token_logprobs", token_logprobs},
            {"top_logprobs", top_logprobs},
            {"text_offset", text_offset}};
  }
};

// An API request in flight: renders the GenerationJob's updates as OpenAI JSON (one body)
// or Server-Sent Events. All methods run on the connection's io thread.
class CompletionBody final : public PendingBody {
 public:
  CompletionBody(ServeContext& ctx, std::shared_ptr<GenerationJob> job, std::vector<std::string> echo_text)
      : ctx_(ctx), job_(std::move(job)), req_(job_->request()),
        chat_(req_.endpoint == frontend::Endpoint::kChatCompletions), echo_text_(std::move(echo_text)),
        choices_(static_cast<size_t>(job_->num_choices())) {}

  void on_ready(std::function<void()> wake) override { job_->on_ready(std::move(wake)); }

  bool take(std::string* out) override {
    updates_.clear();
    const bool done = job_->take(&updates_);
    for (ChoiceUpdate& u : updates_) apply(u, out);
    if (done) finish(out);
    return done;
  }

  void cancel() override { job_->cancel(); }

  int final_status() const override { return job_->engine_failed() ? 500 : 200; }

 private:
  struct Choice {
    std::string text;  // non-streamed: all of it
    std::vector<TokenId> token_ids;
    json chat_logprobs = json::array();
    CompletionLogprobs completion_logprobs;
    int64_t text_offset = 0;
    std::string finish_reason;
    bool sent_role = false;
  };

  bool want_logprobs() const { return req_.sampling.logprobs >= 0; }
  const tokenizer::Tokenizer* tok() const { return ctx_.tokenizer.get(); }

  void apply(ChoiceUpdate& u, std::string* out) {
    Choice& ch = choices_[static_cast<size_t>(u.index)];
    std::string text;
    CompletionLogprobs chunk_lp;  // completions, streamed: this chunk's
    json chat_lp = json::array();
    CompletionLogprobs& clp = req_.stream ? chunk_lp : ch.completion_logprobs;
    if (u.first && req_.echo) {
      text = echo_text_[static_cast<size_t>(u.prompt_index)];
      if (want_logprobs()) {
        // The prompt's tokens first: the first has no logprob.
        const std::vector<TokenId>& prompt = job_->prompt_ids(u.prompt_index);
        for (size_t i = 0; i < prompt.size(); ++i) {
          const sampling::SampleLogprobs* lp = nullptr;
          if (i > 0 && u.prompt_logprobs && i - 1 < u.prompt_logprobs->size()) lp = &(*u.prompt_logprobs)[i - 1];
          clp.add(tok(), prompt[i], lp, &ch.text_offset);
        }
      } else {
        ch.text_offset += static_cast<int64_t>(text.size());
      }
    }
    text += u.text;
    if (want_logprobs()) {
      for (size_t i = 0; i < u.token_ids.size() && i < u.logprobs.size(); ++i) {
        if (chat_) {
          chat_lp.push_back(chat_logprob_entry(tok(), u.logprobs[i]));
        } else {
          clp.add(tok(), u.token_ids[i], &u.logprobs[i], &ch.text_offset);
        }
      }
    }
    if (u.finish_reason) ch.finish_reason = *u.finish_reason;
    if (req_.stream) {
      if (!text.empty() || u.finish_reason || !u.token_ids.empty() || (chat_ && !ch.sent_role)) {
        emit_chunk(u, ch, text, chat_lp, chunk_lp, out);
      }
    } else {
      ch.text += text;
      ch.token_ids.insert(ch.token_ids.end(), u.token_ids.begin(), u.token_ids.end());
      for (json& e : chat_lp) ch.chat_logprobs.push_back(std::move(e));
    }
  }

  json base(std::string_view object) const {
    return {{"id", (chat_ ? "chatcmpl-" : "cmpl-") + job_->request_id()},
            {"object", object},
            {"created", created_},
            {"model", ctx_.served_name}};
  }

  json usage_json() const {
    const GenerationUsage u = job_->usage();
    return {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.prompt_tokens + u.completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
  }

  // One SSE event for one choice's new text (and, without a tokenizer, its new ids).
  void emit_chunk(const ChoiceUpdate& u, Choice& ch, const std::string& text, json& chat_lp,
                  CompletionLogprobs& completion_lp, std::string* out) {
    json c = {{"index", u.index},
              {"logprobs", nullptr},
              {"finish_reason", u.finish_reason ? json(*u.finish_reason) : json(nullptr)}};
    if (chat_) {
      json delta = json::object();
      if (!ch.sent_role) {
        delta["role"] = "assistant";
        ch.sent_role = true;
      }
      if (!text.empty() || delta.empty()) delta["content"] = text;
      c["delta"] = std::move(delta);
      if (want_logprobs()) c["logprobs"] = {{"content", std::move(chat_lp)}};
    } else {
      c["text"] = text;
      if (!tok()) c["token_ids"] = u.token_ids;
      if (want_logprobs()) c["logprobs"] = completion_lp.to_json();
    }
    json chunk = base(chat_ ? "chat.completion.chunk" : "text_completion");
    chunk["choices"] = json::array({std::move(c)});
    if (req_.include_usage) chunk["usage"] = nullptr;
    *out += "data: " + dump(chunk) + "\n\n";
  }

  static json server_error_json() {
    return {{"error",
             {{"message", "The engine aborted the request"},
              {"type", "server_error"},
              {"param", nullptr},
              {"code", nullptr}}}};
  }

  void finish(std::string* out) {
    if (req_.stream) {
      if (job_->engine_failed()) {
        *out += "data: " + dump(server_error_json()) + "\n\n";
      } else if (req_.include_usage) {
        json chunk = base(chat_ ? "chat.completion.chunk" : "text_completion");
        chunk["choices"] = json::array();
        chunk["usage"] = usage_json();
        *out += "data: " + dump(chunk) + "\n\n";
      }
      *out += "data: [DONE]\n\n";
      return;
    }
    if (job_->engine_failed()) {
      *out += dump(server_error_json());
      return;
    }
    json choices = json::array();
    for (size_t i = 0; i < choices_.size(); ++i) {
      Choice& ch = choices_[i];
      json c = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", ch.finish_reason}};
      if (chat_) {
        c["message"] = {{"role", "assistant"}, {"content", ch.text}};
        if (want_logprobs()) c["logprobs"] = {{"content", std::move(ch.chat_logprobs)}};
      } else {
        c["text"] = ch.text;
        if (!tok()) c["token_ids"] = ch.token_ids;
        if (want_logprobs()) c["logprobs"] = ch.completion_logprobs.to_json();
      }
      choices.push_back(std::move(c));
    }
    json body = base(chat_ ? "chat.completion" : "text_completion");
    body["choices"] = std::move(choices);
    body["usage"] = usage_json();
    *out += dump(body);
  }

  ServeContext& ctx_;
  std::shared_ptr<GenerationJob> job_;
  const frontend::ParsedRequest& req_;
  const bool chat_;
  const std::vector<std::string> echo_text_;  // per prompt (echo only)
  const int64_t created_ = unix_now();
  std::vector<Choice> choices_;
  std::vector<ChoiceUpdate> updates_;
};

}  // namespace

HttpResponse api_error_response(const frontend::ApiError& e, int64_t retry_after_seconds) {
  HttpResponse r = error_response(e.http_status, e.type, e.message,
                                  e.param ? std::optional<std::string_view>(*e.param) : std::nullopt,
                                  e.code ? std::optional<std::string_view>(*e.code) : std::nullopt);
  if (e.http_status == 503 || e.http_status == 429) {
    r.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, retry_after_seconds)));
  }
  return r;
}

HttpResponse handle_generate(ServeContext& ctx, const Caller& caller, frontend::Endpoint endpoint,
                             const HttpRequest& http) {
  auto parsed = frontend::parse_request(endpoint, http.body, ctx.limits);
  if (auto* e = std::get_if<frontend::ApiError>(&parsed)) return api_error_response(*e);
  auto prepared_or =
      prepare_generation(ctx, caller, std::move(std::get<frontend::ParsedRequest>(parsed)), http.body);
  if (auto* e = std::get_if<RequestError>(&prepared_or)) {
    return api_error_response(e->error, e->retry_after_seconds);
  }
  PreparedRequest prepared = std::move(std::get<PreparedRequest>(prepared_or));

  // echo: the prompt's text precedes each choice's completion (token-id prompts are
  // detokenized; without a tokenizer there is no text to echo).
  std::vector<std::string> echo_text;
  if (prepared.request.echo) {
    for (size_t i = 0; i < prepared.prompts.size(); ++i) {
      const frontend::PromptInput& in = prepared.request.prompts[i];
      if (in.text) {
        echo_text.push_back(*in.text);
      } else {
        echo_text.push_back(ctx.tokenizer ? ctx.tokenizer->decode(prepared.prompts[i]) : std::string());
      }
    }
  }
  const bool stream = prepared.request.stream;
  auto job = GenerationJob::start(ctx, std::move(prepared), http.request_id);
  HttpResponse r;
  r.pending = std::make_shared<CompletionBody>(ctx, std::move(job), std::move(echo_text));
  r.streamed = stream;
  r.content_type = stream ? "text/event-stream" : "application/json";
  return r;
}

// POST /tokenize (vLLM's shape): {"prompt": str, "add_special_tokens": bool = true} or a
// chat body {"messages": [...], "add_generation_prompt": bool} (rendered with the chat
// template, as a chat request is) -> {"count", "max_model_len", "tokens"}.
HttpResponse handle_tokenize(ServeContext& ctx, const Caller& caller, const HttpRequest& http) {
  const json j = json::parse(http.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return bad_request("The body must be a JSON object", "body");
  if (j.contains("model") && !j["model"].is_null() && !j["model"].is_string()) {
    return bad_request("model must be a string", "model");
  }
  const std::string model = j.contains("model") && j["model"].is_string() ? j["model"].get<std::string>() : "";
  if (auto e = check_model(ctx, caller, model)) return api_error_response(*e);
  if (!ctx.tokenizer) return bad_request("This model has no tokenizer", "prompt");
  std::vector<TokenId> ids;
  if (j.contains("messages")) {
    auto parsed = frontend::parse_request(frontend::Endpoint::kChatCompletions, http.body, ctx.limits);
    if (auto* e = std::get_if<frontend::ApiError>(&parsed)) return api_error_response(*e);
    const auto& req = std::get<frontend::ParsedRequest>(parsed);
    chat::ChatRenderOptions ro;
    ro.enable_thinking = req.enable_thinking;
    if (j.contains("add_generation_prompt")) {
      if (!j["add_generation_prompt"].is_boolean()) {
        return bad_request("add_generation_prompt must be a boolean", "add_generation_prompt");
      }
      ro.add_generation_prompt = j["add_generation_prompt"].get<bool>();
    }
    auto rendered = ctx.formatter->render(req.messages, ro);
    if (!rendered.is_ok()) return bad_request(rendered.status().message(), "messages");
    ids = ctx.tokenizer->encode(*rendered, /*add_bos=*/false, /*parse_special=*/true);
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
    ids = ctx.tokenizer->encode(j["prompt"].get<std::string>(),
                                add_special && ctx.tokenizer->add_bos_default(), /*parse_special=*/false);
  }
  return json_response({{"count", ids.size()}, {"max_model_len", ctx.max_model_len}, {"tokens", ids}});
}

// POST /detokenize (vLLM's shape): {"tokens": [int]} -> {"prompt": str}.
HttpResponse handle_detokenize(ServeContext& ctx, const Caller& caller, const HttpRequest& http) {
  const json j = json::parse(http.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return bad_request("The body must be a JSON object", "body");
  if (j.contains("model") && !j["model"].is_null() && !j["model"].is_string()) {
    return bad_request("model must be a string", "model");
  }
  const std::string model = j.contains("model") && j["model"].is_string() ? j["model"].get<std::string>() : "";
  if (auto e = check_model(ctx, caller, model)) return api_error_response(*e);
  if (!ctx.tokenizer) return bad_request("This model has no tokenizer", "tokens");
  if (!j.contains("tokens") || !j["tokens"].is_array()) return bad_request("tokens must be an array", "tokens");
  std::vector<TokenId> ids;
  for (const json& t : j["tokens"]) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= ctx.limits.vocab_size) {
      return bad_request(fmt::format("tokens must be integers in [0, {})", ctx.limits.vocab_size), "tokens");
    }
    ids.push_back(static_cast<TokenId>(t.get<int64_t>()));
  }
  return json_response({{"prompt", ctx.tokenizer->decode(ids)}});
}

HttpResponse handle_models(const ServeContext& ctx, const Caller& caller) {
  json data = json::array();
  if (caller.tenant && caller.tenant->spec()->may_use(ctx.served_name)) data.push_back(model_card(ctx));
  return json_response({{"object", "list"}, {"data", std::move(data)}});
}

HttpResponse handle_model(const ServeContext& ctx, const Caller& caller, std::string_view id) {
  if (auto e = check_model(ctx, caller, id)) return api_error_response(*e);
  return json_response(model_card(ctx));
}

}  // namespace sluice::server
