#include "server/serve_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <deque>
#include <functional>
#include <fstream>
#include <sstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <thread>

#include "common/log.h"
#include "common/memory_info.h"
#include "engine/chat/chat_formatter.h"
#include "engine/models/loader.h"
#include "engine/runtime/engine.h"
#include "frontend/engine_metrics.h"
#include "frontend/metrics.h"
#include "frontend/openai_request.h"
#include "frontend/text_stream.h"
#include "kernels/cpu/thread_pool.h"
#include "server/grpc_server.h"
#include "server/http_server.h"
#include "server/model_backend.h"
#include "server/model_path.h"
#include "server/openai_http.h"
#include "server/serve_context.h"
#include "server/tenants.h"
#include "server/tenants_file.h"
#include "server/version.h"

namespace sluice::server {
namespace {

using json = nlohmann::json;

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HttpResponse json_response(const json& j) {
  HttpResponse r;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// `handler` behind authentication (INTERFACES.md, "Auth matrix"): 401 authentication_error
// without a key that names a tenant; the admin key is a 403 here (it manages, it does not
// generate).
using TenantHandler = std::function<HttpResponse(const HttpRequest&, const Caller&)>;
Handler with_auth(const ServeContext& st, TenantHandler handler) {
  return [&st, handler = std::move(handler)](const HttpRequest& req) {
    const std::optional<Caller> caller = st.tenants->authenticate(bearer_token(req.header("Authorization")));
    if (!caller) {
      return error_response(401, "authentication_error", "Incorrect or missing API key",
                            std::nullopt, "invalid_api_key");
    }
    if (caller->admin) {
      return error_response(403, "permission_error",
                            "The admin key is for the Admin service only; use a tenant's key",
                            std::nullopt, "admin_key_not_allowed");
    }
    return handler(req, *caller);
  };
}

void add_routes(HttpServer& server, ServeContext& st) {
  server.route(
      "GET", "/health",
      [](const HttpRequest&) {
        HttpResponse r;
        r.content_type = "text/plain";
        return r;
      },
      /*while_draining=*/true);
  server.route("GET", "/ready", [&st, &server](const HttpRequest&) {
    if (server.draining() || st.draining.load()) {
      HttpResponse r = error_response(503, "service_unavailable", "The server is shutting down");
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    return json_response({{"status", "ready"}, {"model", st.served_name}});
  }, /*while_draining=*/true);
  server.route("GET", "/version", [](const HttpRequest&) {
    return json_response({{"version", version()}});
  });
  server.route("GET", "/metrics", [&st](const HttpRequest& req) {
    if (st.metrics_require_key && !st.tenants->authenticate(bearer_token(req.header("Authorization")))) {
      return error_response(401, "authentication_error", "Incorrect or missing API key",
                            std::nullopt, "invalid_api_key");
    }
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = st.registry.render();
    return r;
  });
  server.route("GET", "/v1/models", with_auth(st, [&st](const HttpRequest&, const Caller& c) {
    return handle_models(st, c);
  }));
  server.route("GET", "/v1/models/*", with_auth(st, [&st](const HttpRequest& req, const Caller& c) {
    return handle_model(st, c, std::string_view(req.path).substr(std::string_view("/v1/models/").size()));
  }));
  server.route("POST", "/tokenize", with_auth(st, [&st](const HttpRequest& req, const Caller& c) {
    return handle_tokenize(st, c, req);
  }));
  server.route("POST", "/detokenize", with_auth(st, [&st](const HttpRequest& req, const Caller& c) {
    return handle_detokenize(st, c, req);
  }));
  server.route("POST", "/v1/completions", with_auth(st, [&st](const HttpRequest& req, const Caller& c) {
    return handle_generate(st, c, frontend::Endpoint::kCompletions, req);
  }));
  server.route("POST", "/v1/chat/completions", with_auth(st, [&st](const HttpRequest& req, const Caller& c) {
    return handle_generate(st, c, frontend::Endpoint::kChatCompletions, req);
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
  s->add_option("--grpc-port", o.grpc_port, "gRPC port (0: any free port)")
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
  s->add_option("--tenants", o.tenants,
                "Tenants file (YAML): API key digests, weights, priorities, models and limits; "
                "SIGHUP reloads it");
  s->add_flag("--metrics-require-key", o.metrics_require_key,
              "GET /metrics needs a tenant's or the admin key (or --api-key)");
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
  s->add_option("--max-connections", o.max_connections,
                "Open HTTP connections before new ones get 503 + Retry-After (0: unlimited)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  s->add_option("--request-timeout", o.request_timeout,
                "Seconds a response may take before it is cancelled (504, or an error event in a "
                "stream; 0: none)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  s->add_option("--log-format", o.log_format, "Log lines as text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  s->add_option("--allowed-origins", o.allowed_origins,
                "CORS: origins whose web pages may call the API (scheme://host[:port], "
                "comma-separated), or * for any; default none (no CORS headers)")
      ->delimiter(',')
      ->check([](const std::string& v) -> std::string {
        if (v == "*") return "";
        const size_t scheme = v.find("://");
        const bool ok = (v.rfind("http://", 0) == 0 || v.rfind("https://", 0) == 0) &&
                        v.size() > scheme + 3 && v.find('/', scheme + 3) == std::string::npos;
        return ok ? "" : "an origin is scheme://host[:port] with no path (or *), got '" + v + "'";
      });
  s->add_option("--seed", o.seed,
                "Seed for requests that bring none: each draws the next value of a stream "
                "seeded with this, in admission order (requests sent one at a time then "
                "sample the same tokens on every start; default: a random seed per request)");
  s->add_option("--max-logprobs", o.max_logprobs, "Largest top_logprobs / logprobs a request may ask")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  s->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", o.enable_prefix_caching,
              "Reuse the KV blocks of shared prompt prefixes")
      ->capture_default_str();
  s->add_option("--device", o.device,
                "cpu, cuda, or auto (cuda when this build has it and a GPU is visible)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  s->add_option("--gpu-memory-utilization", o.gpu_memory_utilization,
                "Fraction of the GPU's memory for weights, activations and the KV cache")
      ->check(CLI::Range(0.05, 1.0))
      ->capture_default_str();
  s->add_option("--tensor-parallel-size", o.tensor_parallel_size,
                "GPUs one model is sharded over (only 1 today)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  s->add_option("--chat-template", o.chat_template,
                "Jinja chat template file that overrides the model's")
      ->check(CLI::ExistingFile);
  s->add_option("--scheduling-policy", o.scheduling_policy,
                "Admission order: 'fair' (strict priority classes, then weighted fair share "
                "between tenants) or 'fcfs' (arrival order)")
      ->check(CLI::IsMember({"fair", "fcfs"}))
      ->capture_default_str();
  s->fallthrough();  // `sluice serve --config FILE` reaches the root's --config
  return s;
}

int run_serve(const ServeOptions& o) {
  set_log_format(parse_log_format(o.log_format).value_or(LogFormat::kText));
  if (!o.tenants.empty() && !o.api_key.empty()) {
    return fail("--api-key and --tenants exclude each other: give the key's digest to a tenant", 2);
  }
  if (o.metrics_require_key && o.tenants.empty() && o.api_key.empty()) {
    return fail("--metrics-require-key needs --api-key or --tenants (there is no key to require)", 2);
  }
  // Read before the model loads, so that a bad file fails fast.
  TenantsConfig tenants_config = single_tenant_config(o.api_key);
  if (!o.tenants.empty()) {
    auto cfg = load_tenants_file(o.tenants);
    if (!cfg.is_ok()) return fail(cfg.status().message(), 2);
    tenants_config = std::move(cfg).value();
  }
  if (o.tensor_parallel_size > 1) {
    return fail(fmt::format("--tensor-parallel-size {}: tensor parallelism is not implemented yet; "
                            "use 1", o.tensor_parallel_size), 2);
  }
  kernels::cpu::set_num_threads(o.threads > 0 ? o.threads
                                              : static_cast<int>(std::thread::hardware_concurrency()));
  auto path = resolve_model_path(o.model);
  if (!path.is_ok()) return fail(path.status().message(), 2);
  BackendOptions bo;
  bo.device = o.device;
  bo.gpu_memory_utilization = static_cast<float>(o.gpu_memory_utilization);
  bo.max_num_seqs = o.max_num_seqs;
  bo.max_num_batched_tokens = o.max_num_batched_tokens;
  bo.block_size = o.block_size;
  auto backend_or = load_backend(*path, bo);
  if (!backend_or.is_ok()) return fail(backend_or.status().message(), 2);
  Backend& backend = *backend_or;
  models::LoadedModel& lm = backend.loaded;
  const models::ModelConfig cfg = backend.config;
  SLUICE_LOG_INFO("loaded {} on {} ({})", lm.path, backend.device, cfg.summary());

  ServeContext st;
  st.served_name = o.served_model_name.empty() ? lm.name : o.served_model_name;
  st.created = unix_now();
  st.max_model_len = cfg.max_position_embeddings;
  if (o.max_model_len > 0) st.max_model_len = std::min(st.max_model_len, o.max_model_len);
  st.tokenizer = std::move(lm.tokenizer);
  if (st.tokenizer) {
    std::optional<std::string> tmpl = lm.chat_template;
    if (!o.chat_template.empty()) {
      std::ifstream in(o.chat_template, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      if (!in) return fail(fmt::format("--chat-template {}: cannot read the file", o.chat_template), 2);
      tmpl = text.str();
    }
    auto formatter = chat::ChatFormatter::create(tmpl);
    if (!formatter.is_ok()) {
      return fail(fmt::format("{}: chat template: {}", lm.path, formatter.status().message()), 2);
    }
    st.formatter.emplace(std::move(*formatter));
  }
  st.defaults = lm.defaults;
  st.tenants = std::make_unique<Tenants>(std::move(tenants_config), o.tenants, st.registry);
  st.metrics_require_key = o.metrics_require_key;
  if (st.tenants->open()) {
    SLUICE_LOG_WARN("no --tenants and no --api-key: anyone who reaches {} may use the API as the one "
                    "tenant 'default'", o.host);
  } else if (st.tenants->from_file()) {
    SLUICE_LOG_INFO("tenants file {}: {} tenants{}", o.tenants, st.tenants->size(),
                    st.tenants->has_admin() ? ", admin key set" : "");
  }
  st.max_queued_requests = o.max_queued_requests;
  st.limits.vocab_size = cfg.vocab_size;
  st.limits.max_model_len = st.max_model_len;
  st.limits.max_n = std::min(16, o.max_num_seqs);
  st.limits.max_logprobs = o.max_logprobs;

  engine::EngineConfig ec;
  ec.block_size = o.block_size;
  ec.kv_cache_memory_bytes = static_cast<uint64_t>(o.kv_cache_memory_bytes);
  ec.max_num_seqs = o.max_num_seqs;
  ec.max_num_batched_tokens = o.max_num_batched_tokens;
  ec.max_model_len = st.max_model_len;
  ec.eos_token_ids = lm.defaults.stop_token_ids;
  ec.enable_prefix_caching = o.enable_prefix_caching;
  ec.seed = o.seed;
  ec.scheduling_policy = scheduler::parse_scheduling_policy(o.scheduling_policy)
                             .value_or(scheduler::SchedulingPolicy::kFair);  // checked by CLI
  if (backend.device == "cpu") {
    // The CPU KV cache is committed page by page as it fills: a budget beyond the memory
    // left would start fine and meet the OOM killer under load. Refuse it now.
    if (const std::optional<MemoryAvailable> avail = memory_available();
        avail && ec.kv_cache_memory_bytes > avail->bytes) {
      return fail(fmt::format("--kv-cache-memory-bytes {} is more than the {} bytes of memory left "
                              "({}, after loading the model); lower it",
                              ec.kv_cache_memory_bytes, avail->bytes, avail->source),
                  2);
    }
  }
  auto engine_or = make_engine(backend, ec);
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
  ho.max_connections = static_cast<size_t>(o.max_connections);
  ho.allowed_origins = o.allowed_origins;
  ho.request_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.request_timeout * 1000.0));
  ho.on_complete = [](const AccessRecord& r) {
    // Completions have their own line (generation.cpp); this one covers every response.
    log_fields(LogLevel::kDebug, "http",
               {{"method", r.method}, {"path", r.path}, {"status", r.status},
                {"request_id", r.request_id}, {"remote", r.remote_address},
                {"bytes_sent", r.bytes_sent}, {"duration_ms", r.duration.count() / 1000.0},
                {"client_disconnected", r.client_disconnected}, {"timed_out", r.timed_out}});
  };

  // gRPC beside HTTP, on the same context: one engine, one validator, one set of metrics.
  GrpcServerOptions go;
  go.host = o.host;
  go.port = o.grpc_port;
  go.max_message_bytes = static_cast<size_t>(o.max_request_body_bytes);
  GrpcServer grpc_server(st, go);
  std::atomic<int64_t> drain_start_ns{0};
  ho.on_drain = [&st, &grpc_server, &drain_start_ns] {
    drain_start_ns = std::chrono::steady_clock::now().time_since_epoch().count();
    st.draining = true;
    grpc_server.begin_drain();
  };
  if (st.tenants->from_file()) {
    ho.on_sighup = [&st] {
      if (Status r = st.tenants->reload(); !r.is_ok()) {
        SLUICE_LOG_ERROR("SIGHUP: reload rejected, the tenants in force stay: {}", r.message());
      } else {
        SLUICE_LOG_INFO("SIGHUP: reloaded {}: {} tenants", st.tenants->path(), st.tenants->size());
      }
    };
  }
  HttpServer server(ho);
  st.request_drain = [&server](std::optional<double> timeout_seconds) {
    std::optional<std::chrono::milliseconds> t;
    if (timeout_seconds) t = std::chrono::milliseconds(static_cast<int64_t>(*timeout_seconds * 1000.0));
    server.drain(t);
  };
  add_routes(server, st);
  // gRPC starts once request_drain is set (Admin.Drain may come at once).
  if (auto err = grpc_server.start()) {
    st.engine->stop();
    return fail(fmt::format("gRPC on {}:{}: {}", o.host, o.grpc_port, *err), 1);
  }
  if (auto err = server.start()) {
    grpc_server.shutdown(std::chrono::milliseconds(0));
    st.engine->stop();
    return fail(*err, 1);
  }
  SLUICE_LOG_INFO("serving {} on http://{}:{} and gRPC on {}:{}", st.served_name, o.host, server.port(),
                  o.host, grpc_server.port());
  server.run();
  {
    // gRPC streams get what is left of the drain (none when run() ended without a drain).
    std::chrono::milliseconds left(0);
    if (const int64_t t0 = drain_start_ns.load(); t0 != 0) {
      const auto spent = std::chrono::steady_clock::now().time_since_epoch() - std::chrono::nanoseconds(t0);
      left = std::max(std::chrono::milliseconds(0),
                      server.drain_timeout() - std::chrono::duration_cast<std::chrono::milliseconds>(spent));
    }
    grpc_server.shutdown(left);
  }
  // The io threads are done; stop the engine before the server (and the pending responses
  // in its event loop) goes away, so no delta is pushed into a dead event loop.
  st.engine->stop();
  SLUICE_LOG_INFO("drained; exiting");
  return 0;
}

}  // namespace sluice::server
