#pragma once
// One generation request between a front end (HTTP or gRPC) and the engine. Both front ends
// parse their request into a frontend::ParsedRequest with the one validator
// (frontend/openai_request.h), then:
//
//   auto prepared = prepare_generation(ctx, caller, std::move(parsed), body);  // or a RequestError
//   auto job = GenerationJob::start(ctx, std::move(prepared), request_id);
//   job->on_ready(wake);                 // wake() from any thread when take() has news
//   std::vector<ChoiceUpdate> updates;
//   bool done = job->take(&updates);     // on the front end's own thread, one at a time
//   ...                                  // render updates as JSON/SSE or protobuf
//   job->cancel();                       // the client went away or its deadline passed
//
// The job owns what turns engine deltas into client-visible output: incremental
// detokenization and stop strings (frontend::TextStream, one per choice), finish reasons,
// usage, the request's metrics and its log line. Choice index = prompt index * n + engine
// choice, as OpenAI numbers them.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/ids.h"
#include "engine/runtime/request.h"
#include "engine/sampling/logprobs.h"
#include "frontend/openai_request.h"
#include "frontend/stop_matcher.h"
#include "frontend/text_stream.h"
#include "server/serve_context.h"
#include "server/tenants.h"

namespace sluice::server {

// A validated request, its prompts tokenized and checked against the context.
struct PreparedRequest {
  frontend::ParsedRequest request;
  std::vector<std::vector<TokenId>> prompts;  // one engine request each, n choices each
  std::shared_ptr<const frontend::StopStrings> stops;  // null: none
  // The tenant's hold (in-flight slot, reserved tokens); its spec names the tenant id,
  // priority, weight and cache namespace the engine requests carry.
  std::shared_ptr<TenantLease> lease;
};

// A refused request: the API error, and for a 429 the seconds a retry must wait.
struct RequestError {
  frontend::ApiError error;
  int64_t retry_after_seconds = 1;
};

// The ApiError of a model `caller`'s tenant may not use: 403 permission_error, one message
// whether or not the model exists. Counts a model_forbidden rejection.
frontend::ApiError model_forbidden(const Caller& caller, std::string_view model);
// Whether `caller` may use the served model named `model` (empty: the served one): nullopt
// when it may; else the 403 (model_forbidden above) or, for a tenant allowed that name
// (or "*"), a 404 model_not_found when it is not the served model.
std::optional<frontend::ApiError> check_model(const ServeContext& ctx, const Caller& caller,
                                              std::string_view model);

// After parse_request: the model name (check_model: 403 for a model the tenant may not
// use, 404 model_not_found for an unknown one), admission (503 service_unavailable while
// draining or when --max-queued-requests are waiting; the caller adds Retry-After), the
// model's generation_config defaults for what `body` leaves out or sets to null (empty `body`: none left out are known, no defaults
// applied), chat rendering and tokenization, the context check (400
// context_length_exceeded), and stop-string compilation. A model without a tokenizer takes
// only token-id completions prompts, without stop strings.
// Then the tenant's limits: max_tokens over max_tokens_per_request is a 400 (param
// max_tokens, code max_tokens_exceeded; unset max_tokens is capped at the limit instead), a
// prompt over max_prompt_tokens a 400 (code prompt_too_long), and last the tenant's
// admission (429 rate_limit_error with retry_after_seconds; a reservation that can never
// fit tokens_per_minute a 400 code tokens_limit_exceeded). Each refusal is counted.
std::variant<PreparedRequest, RequestError> prepare_generation(const ServeContext& ctx, const Caller& caller,
                                                               frontend::ParsedRequest parsed,
                                                               std::string_view body);

// New output of one choice since its previous update.
struct ChoiceUpdate {
  int index = 0;                     // prompt index * n + engine choice
  int prompt_index = 0;
  std::string text;                  // new text (valid UTF-8; never part of a stop string)
  std::vector<TokenId> token_ids;    // new tokens, through the one that completed a stop
  // [i] for token_ids[i], when the request asked for logprobs.
  std::vector<sampling::SampleLogprobs> logprobs;
  // On the choice's first update when the request asked for prompt logprobs: [i] is for
  // prompt token i + 1. Shared by the choices of one prompt.
  std::shared_ptr<const std::vector<sampling::SampleLogprobs>> prompt_logprobs;
  bool first = false;                // the choice's first update
  std::optional<std::string> finish_reason;  // "stop", "length" or "abort": its last update
};

struct GenerationUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens served from the prefix cache
};

class GenerationJob : public std::enable_shared_from_this<GenerationJob> {
 public:
  // Submits every prompt to the engine. `ctx` must outlive the job.
  static std::shared_ptr<GenerationJob> start(ServeContext& ctx, PreparedRequest prepared,
                                              std::string request_id);
  ~GenerationJob();
  GenerationJob(const GenerationJob&) = delete;
  GenerationJob& operator=(const GenerationJob&) = delete;

  // Arranges for `wake` to be called once, from any thread, when take() has something new
  // (at once, inside this call, when it already has). Call it again after each take().
  void on_ready(std::function<void()> wake);
  // Appends the updates ready since the last call. Returns true once every choice has
  // finished (its final updates included); usage() is then complete. Calls must not
  // overlap (one consumer).
  bool take(std::vector<ChoiceUpdate>* out);
  // Aborts the engine requests (the client went away, or its deadline passed). Unfinished
  // choices count as aborted in the metrics; take() is not called again. Idempotent.
  void cancel();

  const frontend::ParsedRequest& request() const { return request_; }
  const std::vector<TokenId>& prompt_ids(int prompt_index) const { return subs_[prompt_index].prompt; }
  int num_choices() const { return static_cast<int>(choices_.size()); }
  GenerationUsage usage() const;
  // The engine refused or failed the request (not a client's cancel): the front end
  // reports a server error.
  bool engine_failed() const { return engine_failed_; }
  const std::string& request_id() const { return request_id_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Sub {
    RequestId id;
    std::vector<TokenId> prompt;
    int32_t open_choices = 0;
    int64_t cached_tokens = 0;
  };
  struct Choice {
    std::unique_ptr<frontend::TextStream> text_stream;
    int32_t completion_tokens = 0;
    bool finished = false;
    bool started = false;
    std::optional<Clock::time_point> last_token_at;
    std::string finish_reason;
  };
  struct Queued {
    int sub;
    Clock::time_point at;  // when the engine pushed it (latency metrics)
    engine::Delta delta;
  };
  class Sink;

  GenerationJob(ServeContext& ctx, PreparedRequest prepared, std::string request_id);
  void submit(int sub_index);
  void enqueue(int sub, engine::Delta d);
  void apply(Queued& q, std::vector<ChoiceUpdate>* out);
  void finish();
  // Counts the tenant's tokens and ends its lease (refunding unused reserved tokens). Once.
  void settle();

  ServeContext& ctx_;
  frontend::ParsedRequest request_;
  std::shared_ptr<const frontend::StopStrings> stops_;
  std::shared_ptr<TenantLease> lease_;  // null only in tests that build jobs by hand
  bool settled_ = false;
  const std::string request_id_;
  const Clock::time_point start_;
  std::optional<Clock::time_point> first_token_;

  // Consumer side only (take/cancel):
  std::vector<Sub> subs_;
  std::vector<Choice> choices_;
  int open_ = 0;  // choices without a finish reason yet
  bool done_ = false;
  bool cancelled_ = false;
  bool engine_failed_ = false;

  std::mutex mu_;  // guards the fields below (the engine thread enqueues)
  std::deque<Queued> queue_;
  std::function<void()> wake_;
};

}  // namespace sluice::server
