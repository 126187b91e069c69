#include "server/generation.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/log.h"

namespace sluice::server {
namespace {

std::string_view reason_name(scheduler::FinishReason r) {
  switch (r) {
    case scheduler::FinishReason::kStop: return "stop";
    case scheduler::FinishReason::kLength: return "length";
    case scheduler::FinishReason::kAbort: return "abort";
  }
  return "abort";
}

frontend::ApiError bad_request(std::string message, std::string param) {
  frontend::ApiError e;
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

// The model's generation_config.json sampling defaults, for the parameters the request
// leaves out (or sets to null), as vLLM applies them. parse_request fills absent ones with
// the API's own defaults, so presence is read from the (already validated) body.
void apply_generation_defaults(const ServeContext& ctx, std::string_view body,
                               frontend::ParsedRequest& req) {
  if (body.empty()) return;
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto absent = [&](const char* key) { return !j.is_object() || !j.contains(key) || j[key].is_null(); };
  if (ctx.defaults.temperature && absent("temperature")) req.sampling.temperature = *ctx.defaults.temperature;
  if (ctx.defaults.top_p && absent("top_p")) req.sampling.top_p = *ctx.defaults.top_p;
  if (ctx.defaults.top_k && absent("top_k")) req.sampling.top_k = *ctx.defaults.top_k;
}

std::string shown_model(std::string_view model) {
  return model.size() > 64 ? std::string(model.substr(0, 64)) + "..." : std::string(model);
}

}  // namespace

frontend::ApiError model_forbidden(const Caller& caller, std::string_view model) {
  if (caller.tenant) caller.tenant->count_rejection(RejectReason::kModelForbidden);
  frontend::ApiError e;
  e.http_status = 403;
  e.type = "permission_error";
  // NOTE: the same words whether or not the model exists, so a tenant cannot probe for
  // other tenants' models.
  e.message = fmt::format("The model `{}` does not exist or you do not have access to it.", shown_model(model));
  e.param = "model";
  e.code = "model_not_found";
  return e;
}

std::optional<frontend::ApiError> check_model(const ServeContext& ctx, const Caller& caller,
                                              std::string_view model) {
  const std::string_view name = model.empty() ? std::string_view(ctx.served_name) : model;
  if (!caller.tenant || !caller.tenant->spec()->may_use(name)) return model_forbidden(caller, name);
  if (name != ctx.served_name) {
    frontend::ApiError e;
    e.http_status = 404;
    e.message = fmt::format("The model `{}` does not exist.", shown_model(name));
    e.param = "model";
    e.code = "model_not_found";
    return e;
  }
  return std::nullopt;
}

std::variant<PreparedRequest, RequestError> prepare_generation(const ServeContext& ctx, const Caller& caller,
                                                               frontend::ParsedRequest req,
                                                               std::string_view body) {
  if (auto e = check_model(ctx, caller, req.model)) return RequestError{*e};
  const std::shared_ptr<Tenant>& tenant = caller.tenant;
  const std::shared_ptr<const TenantSpec> spec = tenant->spec();
  const TenantLimits& lim = spec->limits;
  if (lim.max_tokens_per_request && req.max_tokens && *req.max_tokens > *lim.max_tokens_per_request) {
    tenant->count_rejection(RejectReason::kMaxTokens);
    frontend::ApiError e = bad_request(
        fmt::format("max_tokens is {} but this API key allows at most {} per request; lower max_tokens",
                    *req.max_tokens, *lim.max_tokens_per_request),
        "max_tokens");
    e.code = "max_tokens_exceeded";
    return RequestError{e};
  }
  if (ctx.draining.load()) {
    frontend::ApiError e;
    e.http_status = 503;
    e.type = "service_unavailable";
    e.message = "The server is shutting down";
    return RequestError{e};
  }
  if (ctx.max_queued_requests > 0 &&
      ctx.engine->stats().num_waiting_requests >= ctx.max_queued_requests) {
    // The stats lag one engine step, so the bound is approximate by a step's arrivals.
    frontend::ApiError e;
    e.http_status = 503;
    e.type = "service_unavailable";
    e.message = "The server is at capacity; retry shortly";
    e.code = "queue_full";
    return RequestError{e};
  }
  apply_generation_defaults(ctx, body, req);

  PreparedRequest out;
  if (req.endpoint == frontend::Endpoint::kChatCompletions) {
    if (!ctx.tokenizer) {
      return RequestError{bad_request("This model has no tokenizer: only token-id prompts on /v1/completions",
                         "messages")};
    }
    chat::ChatRenderOptions ro;
    ro.enable_thinking = req.enable_thinking;
    auto rendered = ctx.formatter->render(req.messages, ro);
    if (!rendered.is_ok()) return RequestError{bad_request(rendered.status().message(), "messages")};
    out.prompts.push_back(ctx.tokenizer->encode(*rendered, /*add_bos=*/false, /*parse_special=*/true));
  } else {
    for (const frontend::PromptInput& p : req.prompts) {
      if (p.text) {
        if (!ctx.tokenizer) {
          return RequestError{bad_request("This model has no tokenizer: give the prompt as token ids", "prompt")};
        }
        out.prompts.push_back(
            ctx.tokenizer->encode(*p.text, ctx.tokenizer->add_bos_default(), /*parse_special=*/false));
      } else {
        out.prompts.push_back(p.token_ids);
      }
    }
  }
  if (!req.stop.empty() && !ctx.tokenizer) {
    return RequestError{bad_request("This model has no tokenizer: stop strings cannot be matched", "stop")};
  }
  for (const auto& p : out.prompts) {
    if (lim.max_prompt_tokens && static_cast<int64_t>(p.size()) > *lim.max_prompt_tokens) {
      tenant->count_rejection(RejectReason::kPromptTooLong);
      frontend::ApiError e = bad_request(
          fmt::format("The prompt has {} tokens but this API key allows at most {}; shorten it", p.size(),
                      *lim.max_prompt_tokens),
          req.endpoint == frontend::Endpoint::kChatCompletions ? "messages" : "prompt");
      e.code = "prompt_too_long";
      return RequestError{e};
    }
  }
  for (const auto& p : out.prompts) {
    if (auto e = frontend::check_context(req, static_cast<int>(p.size()), ctx.limits)) return RequestError{*e};
    // A chat request without max_tokens got the context left; the tenant's cap bounds it.
    if (lim.max_tokens_per_request && *req.max_tokens > *lim.max_tokens_per_request) {
      req.max_tokens = static_cast<int32_t>(*lim.max_tokens_per_request);
    }
  }
  if (!req.stop.empty()) {
    auto compiled = frontend::StopStrings::compile(req.stop);
    if (!compiled.is_ok()) return RequestError{bad_request(compiled.status().message(), "stop")};
    out.stops = *compiled;
  }
  // Admission last, so that a request refused for any other reason takes nothing.
  int64_t reserve = 0;
  for (const auto& p : out.prompts) {
    reserve += static_cast<int64_t>(p.size()) + int64_t{req.n} * int64_t{*req.max_tokens};
  }
  auto admitted = ctx.tenants->admit(tenant, reserve);
  if (auto* r = std::get_if<Tenants::Rejection>(&admitted)) {
    frontend::ApiError e;
    if (r->retry_after_seconds < 0) {
      e = bad_request(r->message, "max_tokens");
      e.code = "tokens_limit_exceeded";
      return RequestError{e};
    }
    e.http_status = 429;
    e.type = "rate_limit_error";
    e.message = r->message;
    e.code = std::string(reject_reason_name(r->reason)) + "_exceeded";
    return RequestError{e, r->retry_after_seconds};
  }
  out.lease = std::move(std::get<std::shared_ptr<TenantLease>>(admitted));
  out.request = std::move(req);
  return out;
}

// Forwards the engine's deltas into the job's queue; holds the job weakly so that a job the
// front end dropped is not kept alive by the engine.
class GenerationJob::Sink final : public engine::OutputSink {
 public:
  Sink(std::weak_ptr<GenerationJob> job, int sub) : job_(std::move(job)), sub_(sub) {}
  void push(engine::Delta d) override {
    if (auto job = job_.lock()) job->enqueue(sub_, std::move(d));
  }

 private:
  std::weak_ptr<GenerationJob> job_;
  int sub_;
};

GenerationJob::GenerationJob(ServeContext& ctx, PreparedRequest prepared, std::string request_id)
    : ctx_(ctx), request_(std::move(prepared.request)), stops_(std::move(prepared.stops)),
      lease_(std::move(prepared.lease)), request_id_(std::move(request_id)), start_(Clock::now()) {
  for (auto& p : prepared.prompts) {
    Sub sub;
    sub.prompt = std::move(p);
    sub.open_choices = request_.n;
    subs_.push_back(std::move(sub));
    for (int32_t c = 0; c < request_.n; ++c) {
      Choice ch;
      if (ctx_.tokenizer) {
        frontend::TextStreamOptions o;
        o.skip_special_tokens = request_.skip_special_tokens;
        ch.text_stream = std::make_unique<frontend::TextStream>(*ctx_.tokenizer, stops_, o);
      }
      choices_.push_back(std::move(ch));
    }
  }
  open_ = static_cast<int>(choices_.size());
}

GenerationJob::~GenerationJob() = default;

std::shared_ptr<GenerationJob> GenerationJob::start(ServeContext& ctx, PreparedRequest prepared,
                                                    std::string request_id) {
  std::shared_ptr<GenerationJob> job(new GenerationJob(ctx, std::move(prepared), std::move(request_id)));
  for (int s = 0; s < static_cast<int>(job->subs_.size()); ++s) job->submit(s);
  return job;
}

void GenerationJob::submit(int sub_index) {
  Sub& sub = subs_[static_cast<size_t>(sub_index)];
  engine::Request r = frontend::to_engine_request(request_, sub.prompt);
  if (lease_) {
    // Server-derived: the client names none of these.
    const TenantSpec& spec = lease_->spec();
    r.tenant = lease_->tenant().numeric_id();
    r.priority = spec.priority;
    r.weight = spec.weight;
    r.cache_namespace = spec.cache_namespace;
  }
  sub.id = ctx_.engine->submit(std::move(r), std::make_shared<Sink>(weak_from_this(), sub_index));
}

void GenerationJob::on_ready(std::function<void()> wake) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) {
      wake_ = std::move(wake);
      return;
    }
  }
  wake();
}

void GenerationJob::enqueue(int sub, engine::Delta d) {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Queued{sub, Clock::now(), std::move(d)});
    wake.swap(wake_);
  }
  if (wake) wake();
}

bool GenerationJob::take(std::vector<ChoiceUpdate>* out) {
  std::deque<Queued> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(queue_);
  }
  for (Queued& q : batch) apply(q, out);
  if (open_ > 0 || done_) return done_;
  done_ = true;
  finish();
  return true;
}

void GenerationJob::cancel() {
  if (cancelled_ || done_) return;
  cancelled_ = true;
  for (const Sub& s : subs_) ctx_.engine->abort(s.id);
  int unfinished = 0;
  for (const Choice& ch : choices_) unfinished += ch.finished ? 0 : 1;
  ctx_.metrics->request_success_for("abort").inc(unfinished);
  settle();
  SLUICE_LOG_INFO("request {} aborted by the client ({} choices unfinished, {:.1f} ms)", request_id_,
                  unfinished, std::chrono::duration<double, std::milli>(Clock::now() - start_).count());
}

void GenerationJob::apply(Queued& q, std::vector<ChoiceUpdate>* out) {
  engine::Delta& d = q.delta;
  Sub& sub = subs_[static_cast<size_t>(q.sub)];
  if (d.choice < 0 || d.choice >= request_.n) return;
  const int index = q.sub * request_.n + d.choice;
  Choice& ch = choices_[static_cast<size_t>(index)];
  if (ch.finished) return;  // ended by a stop string; the engine is still catching up
  ChoiceUpdate u;
  u.index = index;
  u.prompt_index = q.sub;
  if (!d.token_ids.empty()) {
    if (!first_token_) {
      first_token_ = q.at;
      ctx_.metrics->time_to_first_token->observe(std::chrono::duration<double>(q.at - start_).count());
      if (lease_) {
        lease_->mark_running();
        lease_->tenant().metrics().time_to_first_token->observe(
            std::chrono::duration<double>(q.at - start_).count());
      }
    }
    if (ch.last_token_at) {
      ctx_.metrics->inter_token_latency->observe(
          std::chrono::duration<double>(q.at - *ch.last_token_at).count());
    }
    ch.last_token_at = q.at;
    if (!ch.started) {
      u.prompt_logprobs = d.prompt_logprobs;
      sub.cached_tokens = std::max<int64_t>(sub.cached_tokens, d.num_cached_tokens.value_or(0));
      if (d.queue_seconds) ctx_.metrics->request_queue_time->observe(*d.queue_seconds);
    }
  }
  bool stopped = false;
  for (size_t i = 0; i < d.token_ids.size(); ++i) {
    const TokenId id = d.token_ids[i];
    ++ch.completion_tokens;
    u.token_ids.push_back(id);
    if (i < d.logprobs.size()) u.logprobs.push_back(std::move(d.logprobs[i]));
    if (ch.text_stream &&
        ch.text_stream->push(id, ch.completion_tokens > request_.sampling.min_tokens, &u.text)) {
      stopped = true;
      break;
    }
  }
  if (stopped) {
    u.finish_reason = "stop";
  } else if (d.finish_reason) {
    u.finish_reason = std::string(reason_name(*d.finish_reason));
    if (ch.text_stream && ch.text_stream->finish(&u.text)) u.finish_reason = "stop";
    if (*d.finish_reason == scheduler::FinishReason::kAbort && !cancelled_) {
      // Not the client's doing: the engine refused or failed the request (its log says why).
      engine_failed_ = true;
    }
  }
  if (u.finish_reason) {
    ch.finished = true;
    ch.finish_reason = *u.finish_reason;
    --open_;
    // Every choice of this engine request has ended: one a stop string ended may still be
    // generating in the engine (aborting a finished request is a no-op).
    if (--sub.open_choices == 0) ctx_.engine->abort(sub.id);
  }
  u.first = !ch.started;
  ch.started = true;
  out->push_back(std::move(u));
}

void GenerationJob::settle() {
  if (settled_ || !lease_) return;
  settled_ = true;
  const GenerationUsage u = usage();
  lease_->tenant().count_tokens(u.prompt_tokens, u.cached_tokens, u.completion_tokens);
  lease_->release(u.prompt_tokens + u.completion_tokens);
}

GenerationUsage GenerationJob::usage() const {
  GenerationUsage u;
  for (const Sub& s : subs_) {
    u.prompt_tokens += static_cast<int64_t>(s.prompt.size());
    u.cached_tokens += s.cached_tokens;
  }
  for (const Choice& c : choices_) u.completion_tokens += c.completion_tokens;
  return u;
}

void GenerationJob::finish() {
  const GenerationUsage u = usage();
  const double total = std::chrono::duration<double>(Clock::now() - start_).count();
  frontend::EngineMetrics& m = *ctx_.metrics;
  m.prompt_tokens->inc(static_cast<double>(u.prompt_tokens));
  m.generation_tokens->inc(static_cast<double>(u.completion_tokens));
  m.e2e_request_latency->observe(total);
  if (lease_) lease_->tenant().metrics().e2e_request_latency->observe(total);
  settle();
  std::string reasons;
  for (const Choice& ch : choices_) {
    const std::string_view r = engine_failed_ ? std::string_view("error") : ch.finish_reason;
    m.request_success_for(r).inc();
    if (reasons.find(r) == std::string::npos) reasons += (reasons.empty() ? "" : ",") + std::string(r);
  }
  const double ttft = first_token_ ? std::chrono::duration<double>(*first_token_ - start_).count() : 0.0;
  // One line per finished request (a structured object with --log-format json).
  log_fields(LogLevel::kInfo, fmt::format("request {} done", request_id_),
             {{"request_id", request_id_}, {"tenant", lease_ ? lease_->tenant().id() : std::string()},
              {"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens}, {"cached_tokens", u.cached_tokens},
              {"ttft_ms", ttft * 1e3}, {"total_ms", total * 1e3}, {"finish_reason", reasons}});
}

}  // namespace sluice::server
