#pragma once
// `sluice serve`: loads one model, starts the Engine and serves the OpenAI-compatible HTTP
// API (INTERFACES.md, "HTTP API") and the gRPC API until SIGINT/SIGTERM (or Admin.Drain),
// then drains and exits 0. Callers authenticate by the tenants file, --api-key, or not at
// all (INTERFACES.md, "Auth matrix"); SIGHUP reloads the tenants file.
//
// Routes: GET /health, /ready, /version, /metrics, /v1/models, /v1/models/{id};
// POST /v1/completions and /v1/chat/completions, streamed (SSE) or not, n >= 1;
// POST /tokenize and /detokenize (vLLM's shapes).
// A model without a tokenizer (the tiny test fixtures) serves token-id prompts on
// /v1/completions only; its choices carry empty `text` and, as a sluice extension, the
// generated ids in `token_ids` (the only output there is). Text prompts, chat and stop
// strings are then a 400.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace sluice::server {

struct ServeOptions {
  std::string model = "default";
  std::string served_model_name;  // empty: the model's base name
  std::string host = "127.0.0.1";
  int port = 8000;
  int max_model_len = 0;  // 0: the model's own
  int max_num_seqs = 128;
  int max_num_batched_tokens = 2048;
  int64_t kv_cache_memory_bytes = 512ll << 20;
  int block_size = 16;
  int threads = 0;     // CPU threads for the model; 0: all cores
  int io_threads = 2;  // threads running the HTTP event loop
  double drain_timeout = 30.0;  // seconds
  double idle_timeout = 60.0;   // seconds a connection may wait for or send a request
  std::string api_key;  // non-empty: /v1/*, /tokenize and /detokenize need "Bearer KEY"
  std::string tenants;  // a tenants file (INTERFACES.md, "Tenants file"); SIGHUP reloads it
  bool metrics_require_key = false;  // /metrics needs a tenant or the admin key
  int max_queued_requests = 0;  // 0: unlimited; else 503 + Retry-After once this many wait
  int64_t max_request_body_bytes = 8ll << 20;
  int64_t max_header_bytes = 64ll << 10;
  int grpc_port = 50051;        // 0: any free port
  int max_connections = 0;      // 0: unlimited; else 503 + Retry-After beyond it
  double request_timeout = 0;   // seconds a response may take; 0: none
  std::string log_format = "text";
  int max_logprobs = 20;
  std::optional<uint64_t> seed;  // --seed: the seed stream of unseeded requests
  std::vector<std::string> allowed_origins;  // --allowed-origins (CORS)
  bool enable_prefix_caching = true;
  std::string device = "auto";  // cpu, cuda or auto
  double gpu_memory_utilization = 0.9;
  int tensor_parallel_size = 1;
  std::string chat_template;  // a Jinja file overriding the model's template
  std::string scheduling_policy = "fair";  // "fair" (priority, then tenant share) or "fcfs"
};

// Adds the subcommand and its flags to `app`; `opts` receives the parsed values.
CLI::App* add_serve_command(CLI::App& app, ServeOptions& opts);

// Runs the server; returns the process exit code (0 after a drain, 1 a runtime error,
// 2 bad input such as a model that does not load).
int run_serve(const ServeOptions& opts);

}  // namespace sluice::server
