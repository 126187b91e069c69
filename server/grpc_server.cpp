#include "server/grpc_server.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "common/log.h"
#include "server/generation.h"
#include "sluice/v1/admin.grpc.pb.h"
#include "sluice/v1/inference.grpc.pb.h"

namespace sluice::server {
namespace {

namespace pb = ::sluice::v1;
using json = nlohmann::json;

constexpr const char* kInferenceService = "sluice.v1.Inference";

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// As HTTP's X-Request-Id rule: the id lands in log lines, so a short plain token only.
bool sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':';
  });
}

// The caller of an Inference RPC, from the metadata `authorization: Bearer KEY`:
// UNAUTHENTICATED without a key that names a tenant, PERMISSION_DENIED for the admin key.
// The caller that the metadata's `authorization: Bearer KEY` names, if any.
std::optional<Caller> caller_of(const ServeContext& ctx, const grpc::CallbackServerContext* call) {
  const auto& md = call->client_metadata();
  const auto it = md.find("authorization");
  std::optional<std::string_view> header;
  if (it != md.end()) header = std::string_view(it->second.data(), it->second.size());
  return ctx.tenants->authenticate(bearer_token(header));
}

std::variant<Caller, grpc::Status> authenticate(const ServeContext& ctx, const grpc::CallbackServerContext* call) {
  std::optional<Caller> caller = caller_of(ctx, call);
  if (!caller) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "Incorrect or missing API key (metadata authorization: Bearer KEY)");
  }
  if (caller->admin) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "The admin key is for the Admin service only; use a tenant's key");
  }
  return *std::move(caller);
}

// The unary RPCs' preamble: the authenticated caller, or nullptr once `reactor` has been
// finished with the denial.
const Caller* caller_or_finish(const std::variant<Caller, grpc::Status>& auth,
                               grpc::ServerUnaryReactor* reactor) {
  if (const auto* denied = std::get_if<grpc::Status>(&auth)) {
    reactor->Finish(*denied);
    return nullptr;
  }
  return &std::get<Caller>(auth);
}

// The Admin service's gate (it is served only with a tenants file): PERMISSION_DENIED when
// the file names no admin key, or for a tenant's key; UNAUTHENTICATED for a missing or
// unknown key.
std::optional<grpc::Status> check_admin(const ServeContext& ctx, const grpc::CallbackServerContext* call) {
  if (!ctx.tenants->has_admin()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "The Admin service is off: the tenants file names no admin_api_key_sha256");
  }
  std::optional<Caller> caller = caller_of(ctx, call);
  if (!caller) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "Incorrect or missing admin key (metadata authorization: Bearer KEY)");
  }
  if (!caller->admin) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "The Admin service needs the admin key");
  }
  return std::nullopt;
}

// Tenant ids have no '/', so the key is unambiguous.
std::string stream_key(std::string_view tenant, std::string_view request_id) {
  return fmt::format("{}/{}", tenant, request_id);
}

grpc::Status invalid_argument(std::string_view field, std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      fmt::format("{} (field {})", message, field));
}

// The proto field behind a JSON parameter path of the body built by generate_body():
// "prompt[3]" -> "token_ids[3]", "top_logprobs" -> "logprobs", and so on.
std::string proto_field(std::string_view param, const pb::GenerateRequest& req) {
  auto replace_head = [&](std::string_view head, std::string_view with) -> std::optional<std::string> {
    if (param.substr(0, head.size()) != head) return std::nullopt;
    return std::string(with) + std::string(param.substr(head.size()));
  };
  if (auto f = replace_head("prompt", req.token_ids_size() > 0 ? "token_ids" : "text")) return *f;
  if (auto f = replace_head("top_logprobs", "logprobs")) return *f;
  if (auto f = replace_head("chat_template_kwargs.enable_thinking", "enable_thinking")) return *f;
  return std::string(param);
}

// An ApiError of the shared validator (or of admission) as a gRPC status. 503 is draining
// or a full queue; the two have their own codes here.
grpc::Status to_status(const frontend::ApiError& e, bool draining, const std::string& field) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (e.http_status) {
    case 400: case 413: case 431: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case 401: code = grpc::StatusCode::UNAUTHENTICATED; break;
    case 403: code = grpc::StatusCode::PERMISSION_DENIED; break;
    case 404: code = grpc::StatusCode::NOT_FOUND; break;
    case 429: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case 503:
      code = draining ? grpc::StatusCode::UNAVAILABLE : grpc::StatusCode::RESOURCE_EXHAUSTED;
      break;
    default: break;
  }
  std::string message = e.message;
  if (!field.empty() && message.find(field) == std::string::npos) {
    message += fmt::format(" (field {})", field);
  }
  return grpc::Status(code, message);
}

void set_error_metadata(grpc::CallbackServerContext* call, const frontend::ApiError& e,
                        const std::string& field) {
  if (!field.empty()) call->AddTrailingMetadata("sluice-error-param", field);
  if (e.code) call->AddTrailingMetadata("sluice-error-code", *e.code);
}

json chat_messages(const google::protobuf::RepeatedPtrField<pb::ChatMessage>& messages) {
  json out = json::array();
  for (const pb::ChatMessage& m : messages) {
    json j = {{"role", m.role()}, {"content", m.content()}};
    if (!m.name().empty()) j["name"] = m.name();
    if (!m.tool_call_id().empty()) j["tool_call_id"] = m.tool_call_id();
    out.push_back(std::move(j));
  }
  return out;
}

// The JSON body that the OpenAI endpoint would take for `req`: chat when messages are
// given, completions for text or token ids. Only what the client set is written, so that
// the validator sees exactly what a JSON client leaving those keys out would send (and the
// model's generation defaults apply to the rest).
std::variant<std::pair<frontend::Endpoint, std::string>, grpc::Status> generate_body(
    const pb::GenerateRequest& req) {
  const int inputs = (req.text().empty() ? 0 : 1) + (req.messages_size() > 0 ? 1 : 0) +
                     (req.token_ids_size() > 0 ? 1 : 0);
  if (inputs != 1) {
    return invalid_argument("text", "Give exactly one of text, messages and token_ids");
  }
  const bool chat = req.messages_size() > 0;
  json j = json::object();
  if (chat) {
    j["messages"] = chat_messages(req.messages());
  } else if (!req.text().empty()) {
    j["prompt"] = req.text();
  } else {
    j["prompt"] = json(std::vector<int32_t>(req.token_ids().begin(), req.token_ids().end()));
  }
  if (!req.model().empty()) j["model"] = req.model();
  if (req.has_max_tokens()) j["max_tokens"] = req.max_tokens();
  if (req.has_n()) j["n"] = req.n();
  // Floats widen exactly to double; the validator's ranges see the client's float.
  if (req.has_temperature()) j["temperature"] = static_cast<double>(req.temperature());
  if (req.has_top_p()) j["top_p"] = static_cast<double>(req.top_p());
  if (req.has_top_k()) j["top_k"] = req.top_k();
  if (req.has_min_p()) j["min_p"] = static_cast<double>(req.min_p());
  if (req.has_presence_penalty()) j["presence_penalty"] = static_cast<double>(req.presence_penalty());
  if (req.has_frequency_penalty()) j["frequency_penalty"] = static_cast<double>(req.frequency_penalty());
  if (req.has_repetition_penalty()) {
    j["repetition_penalty"] = static_cast<double>(req.repetition_penalty());
  }
  if (!req.logit_bias().empty()) {
    json bias = json::object();
    for (const auto& [token, value] : req.logit_bias()) bias[std::to_string(token)] = static_cast<double>(value);
    j["logit_bias"] = std::move(bias);
  }
  if (req.has_seed()) j["seed"] = req.seed();
  if (req.has_min_tokens()) j["min_tokens"] = req.min_tokens();
  if (req.stop_size() > 0) j["stop"] = json(std::vector<std::string>(req.stop().begin(), req.stop().end()));
  if (req.stop_token_ids_size() > 0) {
    j["stop_token_ids"] = json(std::vector<int32_t>(req.stop_token_ids().begin(), req.stop_token_ids().end()));
  }
  if (req.ignore_eos()) j["ignore_eos"] = true;
  if (req.has_logprobs()) {
    if (chat) {
      j["logprobs"] = true;
      j["top_logprobs"] = req.logprobs();
    } else {
      j["logprobs"] = req.logprobs();
    }
  }
  if (req.has_skip_special_tokens()) j["skip_special_tokens"] = req.skip_special_tokens();
  if (req.has_enable_thinking()) j["chat_template_kwargs"] = {{"enable_thinking", req.enable_thinking()}};
  if (!req.user().empty()) j["user"] = req.user();
  return std::pair{chat ? frontend::Endpoint::kChatCompletions : frontend::Endpoint::kCompletions, dump(j)};
}

pb::FinishReason finish_reason(std::string_view r) {
  if (r == "stop") return pb::FINISH_REASON_STOP;
  if (r == "length") return pb::FINISH_REASON_LENGTH;
  return pb::FINISH_REASON_ABORT;
}

void set_logprob(const sampling::TokenLogprob& from, pb::TokenLogprob* to) {
  to->set_token_id(from.token);
  to->set_logprob(from.logprob);
}

}  // namespace

class GenerateStream;

struct GrpcServer::Impl {
  class Service final : public pb::Inference::CallbackService {
   public:
    explicit Service(Impl& impl) : impl_(impl) {}
    grpc::ServerWriteReactor<pb::GenerateResponse>* Generate(grpc::CallbackServerContext* call,
                                                             const pb::GenerateRequest* req) override;
    grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* call, const pb::AbortRequest* req,
                                    pb::AbortResponse* resp) override;
    grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* call, const pb::TokenizeRequest* req,
                                       pb::TokenizeResponse* resp) override;
    grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* call, const pb::ListModelsRequest* req,
                                         pb::ListModelsResponse* resp) override;
    grpc::ServerUnaryReactor* GetLoad(grpc::CallbackServerContext* call, const pb::GetLoadRequest* req,
                                      pb::GetLoadResponse* resp) override;

   private:
    Impl& impl_;
  };

  // sluice.v1.Admin (admin.proto), behind the admin key (check_admin).
  class AdminService final : public pb::Admin::CallbackService {
   public:
    explicit AdminService(Impl& impl) : impl_(impl) {}
    grpc::ServerUnaryReactor* TenantUsage(grpc::CallbackServerContext* call, const pb::TenantUsageRequest* req,
                                          pb::TenantUsageResponse* resp) override;
    grpc::ServerUnaryReactor* Reload(grpc::CallbackServerContext* call, const pb::ReloadRequest* req,
                                     pb::ReloadResponse* resp) override;
    grpc::ServerUnaryReactor* Drain(grpc::CallbackServerContext* call, const pb::DrainRequest* req,
                                    pb::DrainResponse* resp) override;

   private:
    Impl& impl_;
  };

  Impl(ServeContext& c, GrpcServerOptions o) : ctx(c), opt(std::move(o)), service(*this), admin_service(*this) {
    std::random_device rd;
    id_prefix = fmt::format("{:08x}", rd());
  }

  bool is_draining() const { return draining.load() || ctx.draining.load(); }
  std::string new_request_id() { return fmt::format("grpc-{}{:08x}", id_prefix, next_id.fetch_add(1)); }

  // Running Generate streams by stream_key(tenant, request id) (for Abort and shutdown).
  // False: the id is taken.
  bool register_stream(const std::string& id, const std::shared_ptr<GenerateStream>& s);
  void stream_done(const std::string& id, bool registered);
  grpc::Status tokenize(grpc::CallbackServerContext* call, const pb::TokenizeRequest& req,
                        pb::TokenizeResponse* resp);

  ServeContext& ctx;
  const GrpcServerOptions opt;
  Service service;
  AdminService admin_service;
  std::unique_ptr<grpc::Server> server;
  int bound_port = 0;
  std::atomic<bool> draining{false};
  std::string id_prefix;
  std::atomic<uint64_t> next_id{1};

  std::mutex mu;  // guards the fields below
  std::condition_variable all_done;
  // Keyed per tenant, so that tenants neither reach nor collide with each other's ids.
  std::unordered_map<std::string, std::weak_ptr<GenerateStream>> streams;
  int active_streams = 0;  // Generate calls not yet done, registered or not
  bool shut_down = false;
};

// One Generate call. Every event (the job's wake on the engine thread, a write completing,
// the client's cancel or deadline, Abort, shutdown) calls pump(); one thread at a time runs
// its loop (`pumping_`), the others only mark that it must go round again, so the job's
// one-consumer calls (take, on_ready, cancel) and the stream's operations never overlap.
// No lock is held across a call into the job or gRPC: either may call back at once (the
// job's wake inside on_ready, OnWriteDone or even OnDone inside a write).
//
// Lifetime: the stream owns itself (self_) until OnDone, the gRPC's last reaction; the
// job's wake holds it weakly and a running pump() strongly, so it may outlive OnDone by one
// pump and be destroyed on the engine thread (the job's destructor does no engine calls).
class GenerateStream final : public grpc::ServerWriteReactor<pb::GenerateResponse>,
                             public std::enable_shared_from_this<GenerateStream> {
 public:
  GenerateStream(GrpcServer::Impl& server, grpc::CallbackServerContext* call)
      : server_(server), call_(call) {}

  // Validates and starts the job, or finishes with the error. Called once, right after
  // construction, on the handler's thread.
  void start(const pb::GenerateRequest& req) {
    self_ = shared_from_this();
    ServeContext& ctx = server_.ctx;
    auto auth = authenticate(ctx, call_);
    if (auto* denied = std::get_if<grpc::Status>(&auth)) return fail(*denied);
    const Caller& caller = std::get<Caller>(auth);
    tenant_id_ = caller.tenant->id();
    if (server_.is_draining()) {
      return fail(grpc::Status(grpc::StatusCode::UNAVAILABLE, "The server is shutting down"));
    }
    if (!req.request_id().empty() && !sane_request_id(req.request_id())) {
      return fail(invalid_argument("request_id",
                                   "request_id must be 1 to 128 characters of [A-Za-z0-9._:-]"));
    }
    auto body = generate_body(req);
    if (auto* s = std::get_if<grpc::Status>(&body)) return fail(*s);
    auto& [endpoint, text] = std::get<0>(body);
    auto parsed = frontend::parse_request(endpoint, text, ctx.limits);
    if (auto* e = std::get_if<frontend::ApiError>(&parsed)) return fail_api(*e, req);
    auto prepared = prepare_generation(ctx, caller, std::move(std::get<frontend::ParsedRequest>(parsed)), text);
    if (auto* e = std::get_if<RequestError>(&prepared)) {
      if (e->error.http_status == 429) {
        call_->AddTrailingMetadata("retry-after", std::to_string(std::max<int64_t>(1, e->retry_after_seconds)));
      }
      return fail_api(e->error, req);
    }

    request_id_ = req.request_id().empty() ? server_.new_request_id() : req.request_id();
    {
      // An Abort may find the stream once it is registered: its pump() waits (again_)
      // until the job exists.
      std::lock_guard<std::mutex> lock(mu_);
      pumping_ = true;
    }
    stream_key_ = stream_key(tenant_id_, request_id_);
    if (!server_.register_stream(stream_key_, shared_from_this())) {
      return fail(grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                               fmt::format("request_id {} is already running", request_id_)));
    }
    registered_ = true;
    job_ = GenerationJob::start(ctx, std::move(std::get<PreparedRequest>(prepared)), request_id_);
    slots_.assign(static_cast<size_t>(job_->num_choices()), -1);
    out_.set_request_id(request_id_);
    out_.set_model(ctx.served_name);
    {
      std::lock_guard<std::mutex> lock(mu_);
      pumping_ = false;
    }
    pump();
  }

  // Ends the call with `status` and aborts its engine requests (Abort, shutdown).
  void request_cancel(grpc::Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cancel_requested_) return;
      cancel_requested_ = true;
      cancel_status_ = std::move(status);
    }
    pump();
  }

  void OnCancel() override {
    request_cancel(grpc::Status(grpc::StatusCode::CANCELLED, "Cancelled by the client or its deadline"));
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      write_in_flight_ = false;
      if (!ok && !cancel_requested_) {  // the stream broke: the client is gone
        cancel_requested_ = true;
        cancel_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "The stream broke");
      }
    }
    pump();
  }

  void OnDone() override {
    server_.stream_done(stream_key_, registered_);
    self_.reset();  // may destroy this; nothing after it
  }

 private:
  void fail(const grpc::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      finish_called_ = true;
    }
    Finish(status);
  }

  void fail_api(const frontend::ApiError& e, const pb::GenerateRequest& req) {
    const std::string field = e.param ? proto_field(*e.param, req) : std::string();
    set_error_metadata(call_, e, field);
    fail(to_status(e, server_.is_draining(), field));
  }

  void pump() {
    const std::shared_ptr<GenerateStream> keep = shared_from_this();  // OnDone may run inside
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (pumping_) {
        again_ = true;
        return;
      }
      pumping_ = true;
    }
    for (;;) {
      step();
      std::lock_guard<std::mutex> lock(mu_);
      if (!again_) {
        pumping_ = false;
        return;
      }
      again_ = false;
    }
  }

  // One round: cancel, write what the job has, finish, or arm the job's wake.
  void step() {
    bool cancel = false, in_flight = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_called_) return;
      cancel = cancel_requested_;
      in_flight = write_in_flight_;
    }
    if (cancel) {
      if (!job_done_) {
        job_->cancel();  // the engine drops the requests within one step
        job_done_ = true;
      }
      if (in_flight) return;  // finished once the write is done (OnWriteDone pumps)
      grpc::Status status;
      {
        std::lock_guard<std::mutex> lock(mu_);
        finish_called_ = true;
        status = cancel_status_;
      }
      Finish(status);
      return;
    }
    if (in_flight) return;  // OnWriteDone pumps
    if (!job_done_) {
      updates_.clear();
      job_done_ = job_->take(&updates_);
      add(updates_);
    }
    if (job_done_) {
      const GenerationUsage u = job_->usage();
      pb::Usage* usage = out_.mutable_usage();
      usage->set_prompt_tokens(u.prompt_tokens);
      usage->set_completion_tokens(u.completion_tokens);
      usage->set_cached_tokens(u.cached_tokens);
      const grpc::Status status = job_->engine_failed()
                                      ? grpc::Status(grpc::StatusCode::INTERNAL,
                                                     "The engine failed the request (see the server log)")
                                      : grpc::Status::OK;
      {
        std::lock_guard<std::mutex> lock(mu_);
        finish_called_ = true;
        write_in_flight_ = true;
      }
      StartWriteAndFinish(&out_, grpc::WriteOptions(), status);
      return;
    }
    if (out_.choices_size() > 0 || !first_sent_) {
      first_sent_ = true;
      sending_.Swap(&out_);
      out_.Clear();
      std::fill(slots_.begin(), slots_.end(), -1);
      {
        std::lock_guard<std::mutex> lock(mu_);
        write_in_flight_ = true;
      }
      StartWrite(&sending_);
      return;
    }
    std::weak_ptr<GenerateStream> weak = weak_from_this();
    job_->on_ready([weak] {
      if (auto s = weak.lock()) s->pump();
    });
  }

  // Merges updates into the message being built: one ChoiceDelta per choice.
  void add(std::vector<ChoiceUpdate>& updates) {
    for (ChoiceUpdate& u : updates) {
      int& slot = slots_[static_cast<size_t>(u.index)];
      if (slot < 0) {
        slot = out_.choices_size();
        out_.add_choices()->set_index(u.index);
      }
      pb::ChoiceDelta* d = out_.mutable_choices(slot);
      for (TokenId t : u.token_ids) d->add_token_ids(t);
      d->mutable_text()->append(u.text);
      for (const sampling::SampleLogprobs& lp : u.logprobs) {
        pb::Logprobs* l = d->add_logprobs();
        set_logprob(lp.chosen, l->mutable_chosen());
        for (const sampling::TokenLogprob& t : lp.top) set_logprob(t, l->add_top());
      }
      if (u.finish_reason) d->set_finish_reason(finish_reason(*u.finish_reason));
    }
  }

  GrpcServer::Impl& server_;
  grpc::CallbackServerContext* const call_;
  std::shared_ptr<GenerateStream> self_;
  std::string request_id_;
  std::string tenant_id_;   // who started it: only that tenant may Abort it
  std::string stream_key_;  // its key in Impl::streams
  bool registered_ = false;

  // The pumping thread only:
  std::shared_ptr<GenerationJob> job_;
  bool job_done_ = false;  // take() returned true, or the job was cancelled
  bool first_sent_ = false;
  std::vector<ChoiceUpdate> updates_;
  std::vector<int> slots_;       // [choice] its position in out_.choices, or -1
  pb::GenerateResponse out_;     // being built
  pb::GenerateResponse sending_;  // in flight (StartWrite needs it alive until OnWriteDone)

  std::mutex mu_;  // guards the fields below
  bool pumping_ = false;
  bool again_ = false;
  bool write_in_flight_ = false;
  bool finish_called_ = false;
  bool cancel_requested_ = false;
  grpc::Status cancel_status_;
};

bool GrpcServer::Impl::register_stream(const std::string& id, const std::shared_ptr<GenerateStream>& s) {
  std::lock_guard<std::mutex> lock(mu);
  return streams.emplace(id, s).second;
}

void GrpcServer::Impl::stream_done(const std::string& id, bool registered) {
  std::lock_guard<std::mutex> lock(mu);
  if (registered) streams.erase(id);
  --active_streams;
  all_done.notify_all();
}

grpc::ServerWriteReactor<pb::GenerateResponse>* GrpcServer::Impl::Service::Generate(
    grpc::CallbackServerContext* call, const pb::GenerateRequest* req) {
  {
    std::lock_guard<std::mutex> lock(impl_.mu);
    ++impl_.active_streams;
  }
  auto stream = std::make_shared<GenerateStream>(impl_, call);
  stream->start(*req);
  return stream.get();  // owned by itself until OnDone
}

grpc::ServerUnaryReactor* GrpcServer::Impl::Service::Abort(grpc::CallbackServerContext* call,
                                                          const pb::AbortRequest* req,
                                                          pb::AbortResponse* resp) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  const auto auth = authenticate(impl_.ctx, call);
  const Caller* caller = caller_or_finish(auth, reactor);
  if (caller == nullptr) return reactor;
  std::shared_ptr<GenerateStream> stream;
  {
    std::lock_guard<std::mutex> lock(impl_.mu);
    // Another tenant's request is not found, as if it did not exist.
    auto it = impl_.streams.find(stream_key(caller->tenant->id(), req->request_id()));
    if (it != impl_.streams.end()) stream = it->second.lock();
  }
  resp->set_found(stream != nullptr);
  if (stream) {
    SLUICE_LOG_INFO("request {}: Abort", req->request_id());
    stream->request_cancel(grpc::Status(grpc::StatusCode::CANCELLED,
                                        fmt::format("Request {} was aborted", req->request_id())));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::Status GrpcServer::Impl::tokenize(grpc::CallbackServerContext* call, const pb::TokenizeRequest& req,
                                        pb::TokenizeResponse* resp) {
  auto auth = authenticate(ctx, call);
  if (auto* denied = std::get_if<grpc::Status>(&auth)) return *denied;
  if (auto e = check_model(ctx, std::get<Caller>(auth), req.model())) return to_status(*e, false, "model");
  if (!ctx.tokenizer) return invalid_argument("text", "This model has no tokenizer");
  std::vector<int32_t> ids;
  if (req.messages_size() > 0) {
    if (!req.text().empty()) return invalid_argument("text", "Give text or messages, not both");
    json body = {{"messages", chat_messages(req.messages())}};
    const auto parsed = frontend::parse_request(frontend::Endpoint::kChatCompletions, dump(body), ctx.limits);
    if (auto* e = std::get_if<frontend::ApiError>(&parsed)) {
      return to_status(*e, false, e->param ? *e->param : std::string());
    }
    chat::ChatRenderOptions ro;
    if (req.has_add_generation_prompt()) ro.add_generation_prompt = req.add_generation_prompt();
    if (req.has_enable_thinking()) ro.enable_thinking = req.enable_thinking();
    auto rendered = ctx.formatter->render(std::get<frontend::ParsedRequest>(parsed).messages, ro);
    if (!rendered.is_ok()) return invalid_argument("messages", std::string(rendered.status().message()));
    ids = ctx.tokenizer->encode(*rendered, /*add_bos=*/false, /*parse_special=*/true);
  } else {
    const bool add_special = !req.has_add_special_tokens() || req.add_special_tokens();
    ids = ctx.tokenizer->encode(req.text(), add_special && ctx.tokenizer->add_bos_default(),
                                /*parse_special=*/false);
  }
  resp->mutable_token_ids()->Assign(ids.begin(), ids.end());
  resp->set_max_model_len(ctx.max_model_len);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* GrpcServer::Impl::Service::Tokenize(grpc::CallbackServerContext* call,
                                                             const pb::TokenizeRequest* req,
                                                             pb::TokenizeResponse* resp) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  reactor->Finish(impl_.tokenize(call, *req, resp));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcServer::Impl::Service::ListModels(grpc::CallbackServerContext* call,
                                                               const pb::ListModelsRequest*,
                                                               pb::ListModelsResponse* resp) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  const auto auth = authenticate(impl_.ctx, call);
  const Caller* caller = caller_or_finish(auth, reactor);
  if (caller == nullptr) return reactor;
  if (!caller->tenant->spec()->may_use(impl_.ctx.served_name)) {
    reactor->Finish(grpc::Status::OK);  // only the tenant's models: none here
    return reactor;
  }
  pb::Model* m = resp->add_models();
  m->set_id(impl_.ctx.served_name);
  m->set_created(impl_.ctx.created);
  m->set_owned_by("sluice");
  m->set_max_model_len(impl_.ctx.max_model_len);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcServer::Impl::Service::GetLoad(grpc::CallbackServerContext* call,
                                                            const pb::GetLoadRequest*,
                                                            pb::GetLoadResponse* resp) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  const auto auth = authenticate(impl_.ctx, call);
  const Caller* caller = caller_or_finish(auth, reactor);
  if (caller == nullptr) return reactor;
  const engine::EngineStats s = impl_.ctx.engine->stats();
  resp->set_running_requests(s.num_running_requests);
  resp->set_waiting_requests(s.num_waiting_requests);
  resp->set_running_sequences(s.num_running);
  resp->set_waiting_sequences(s.num_waiting);
  for (size_t g = 0; g < s.kv_blocks_total.size(); ++g) {
    pb::KvGroupLoad* k = resp->add_kv_groups();
    k->set_group(static_cast<int32_t>(g));
    k->set_blocks_used(g < s.kv_blocks_used.size() ? s.kv_blocks_used[g] : 0);
    k->set_blocks_total(s.kv_blocks_total[g]);
  }
  resp->set_kv_usage(s.kv_usage);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcServer::Impl::AdminService::TenantUsage(grpc::CallbackServerContext* call,
                                                                     const pb::TenantUsageRequest* req,
                                                                     pb::TenantUsageResponse* resp) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  if (auto denied = check_admin(impl_.ctx, call)) {
    reactor->Finish(*denied);
    return reactor;
  }
  const std::vector<server::TenantUsage> usage = impl_.ctx.tenants->usage(req->tenant_id());
  if (!req->tenant_id().empty() && usage.empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 fmt::format("No tenant `{}` is in force", req->tenant_id().substr(0, 64))));
    return reactor;
  }
  for (const server::TenantUsage& u : usage) {
    pb::TenantUsage* t = resp->add_tenants();
    t->set_tenant_id(u.id);
    t->set_requests(u.requests);
    int64_t rejected = 0;
    for (size_t i = 0; i < kNumRejectReasons; ++i) {
      rejected += u.rejections[i];
      (*t->mutable_rejections())[std::string(frontend::kTenantRejectionReasons[i])] = u.rejections[i];
    }
    t->set_rejected_requests(rejected);
    t->set_prompt_tokens(u.prompt_tokens);
    t->set_completion_tokens(u.completion_tokens);
    t->set_cached_tokens(u.cached_tokens);
    t->set_running_requests(u.running);
    t->set_waiting_requests(u.waiting);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcServer::Impl::AdminService::Reload(grpc::CallbackServerContext* call,
                                                                const pb::ReloadRequest*,
                                                                pb::ReloadResponse* resp) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  if (auto denied = check_admin(impl_.ctx, call)) {
    reactor->Finish(*denied);
    return reactor;
  }
  const Status r = impl_.ctx.tenants->reload();
  if (!r.is_ok()) {
    SLUICE_LOG_ERROR("Admin.Reload rejected, the tenants in force stay: {}", r.message());
    reactor->Finish(grpc::Status(r.code() == StatusCode::kNotFound ? grpc::StatusCode::NOT_FOUND
                                                                    : grpc::StatusCode::INVALID_ARGUMENT,
                                 r.message()));
    return reactor;
  }
  SLUICE_LOG_INFO("Admin.Reload: reloaded {}: {} tenants", impl_.ctx.tenants->path(), impl_.ctx.tenants->size());
  resp->set_tenants(static_cast<int32_t>(impl_.ctx.tenants->size()));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcServer::Impl::AdminService::Drain(grpc::CallbackServerContext* call,
                                                               const pb::DrainRequest* req, pb::DrainResponse*) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  if (auto denied = check_admin(impl_.ctx, call)) {
    reactor->Finish(*denied);
    return reactor;
  }
  if (req->has_timeout_seconds() && !(req->timeout_seconds() >= 0 && req->timeout_seconds() <= 86400)) {
    reactor->Finish(invalid_argument("timeout_seconds", "timeout_seconds must be in [0, 86400]"));
    return reactor;
  }
  if (!impl_.ctx.request_drain) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "The server is not serving yet"));
    return reactor;
  }
  SLUICE_LOG_INFO("Admin.Drain");
  std::optional<double> timeout;
  if (req->has_timeout_seconds()) timeout = req->timeout_seconds();
  impl_.ctx.request_drain(timeout);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

GrpcServer::GrpcServer(ServeContext& ctx, GrpcServerOptions opts)
    : impl_(std::make_unique<Impl>(ctx, std::move(opts))) {}

GrpcServer::~GrpcServer() { shutdown(std::chrono::milliseconds(0)); }

std::optional<std::string> GrpcServer::start() {
  Impl& m = *impl_;
  if (m.server) return "the gRPC server is already started";
  // Process-wide and applies to servers built afterwards: the standard
  // grpc.health.v1.Health (Check and Watch), served by gRPC itself.
  grpc::EnableDefaultHealthCheckService(true);
  const std::string address = m.opt.host.find(':') != std::string::npos
                                  ? fmt::format("[{}]:{}", m.opt.host, m.opt.port)
                                  : fmt::format("{}:{}", m.opt.host, m.opt.port);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, so a second daemon on the same port would start and
  // silently take half the connections: a port in use must be a start-up error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &m.bound_port);
  builder.RegisterService(&m.service);
  // Without a tenants file the Admin service does not exist (UNIMPLEMENTED): no admin key
  // can be configured then.
  if (m.ctx.tenants->from_file()) builder.RegisterService(&m.admin_service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(m.opt.max_message_bytes, INT32_MAX)));
  m.server = builder.BuildAndStart();
  if (!m.server || m.bound_port == 0) {
    m.server.reset();
    return fmt::format("cannot listen for gRPC on {}", address);
  }
  if (grpc::HealthCheckServiceInterface* health = m.server->GetHealthCheckService()) {
    health->SetServingStatus("", !m.is_draining());
    health->SetServingStatus(kInferenceService, !m.is_draining());
  }
  return std::nullopt;
}

int GrpcServer::port() const { return impl_->bound_port; }

void GrpcServer::begin_drain() {
  Impl& m = *impl_;
  if (m.draining.exchange(true)) return;
  if (m.server) {
    if (grpc::HealthCheckServiceInterface* health = m.server->GetHealthCheckService()) {
      health->SetServingStatus(false);  // every service, "" included
    }
  }
}

void GrpcServer::shutdown(std::chrono::milliseconds deadline) {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.shut_down || !m.server) return;
    m.shut_down = true;
  }
  begin_drain();
  std::vector<std::shared_ptr<GenerateStream>> rest;
  {
    std::unique_lock<std::mutex> lock(m.mu);
    m.all_done.wait_for(lock, deadline, [&] { return m.active_streams == 0; });
    for (auto& [id, weak] : m.streams) {
      if (auto s = weak.lock()) rest.push_back(std::move(s));
    }
  }
  if (!rest.empty()) SLUICE_LOG_INFO("gRPC: ending {} streams still running", rest.size());
  for (auto& s : rest) {
    s->request_cancel(grpc::Status(grpc::StatusCode::UNAVAILABLE, "The server is shutting down"));
  }
  rest.clear();
  // Refuses new calls, and cancels whatever is still running after a second (a stream
  // whose client stopped reading); returns once every call is done.
  m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  m.server->Wait();
}

}  // namespace sluice::server
