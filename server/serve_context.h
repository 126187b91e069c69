#pragma once
// ServeContext: what the HTTP and gRPC front ends of `sluice serve` share for one model.
// Built once at start-up; afterwards immutable except the engine, the metrics and the
// tenants, which are thread-safe, and `draining`, which the signal path sets.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "engine/chat/chat_formatter.h"
#include "engine/models/loader.h"  // GenerationDefaults
#include "engine/runtime/engine.h"
#include "engine/tokenizer/tokenizer.h"
#include "frontend/engine_metrics.h"
#include "frontend/metrics.h"
#include "frontend/openai_request.h"
#include "server/tenants.h"

namespace sluice::server {

struct ServeContext {
  std::string served_name;
  int64_t created = 0;  // unix seconds, the model card's `created`
  int max_model_len = 0;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;  // null: token-id prompts only
  std::optional<chat::ChatFormatter> formatter;     // with a tokenizer only
  models::GenerationDefaults defaults;              // generation_config.json sampling
  frontend::RequestLimits limits;
  std::unique_ptr<engine::Engine> engine;
  frontend::Registry registry;
  std::optional<frontend::EngineMetrics> metrics;
  // Who may call (always set while serving): the --tenants file, or the one tenant of an
  // open daemon or of --api-key.
  std::unique_ptr<Tenants> tenants;
  bool metrics_require_key = false;  // /metrics needs a tenant or the admin key
  // Starts the drain as SIGTERM does (Admin.Drain); `timeout_seconds` overrides
  // --drain-timeout. Set once the HTTP server exists; any thread.
  std::function<void(std::optional<double> timeout_seconds)> request_drain;
  int max_queued_requests = 0;   // 0: unlimited
  std::atomic<bool> draining{false};

  // Cumulative engine counters already added to the metrics (collect hook).
  std::mutex collect_mu;
  int64_t seen_prefix_queries = 0, seen_prefix_hits = 0, seen_preemptions = 0;
};

}  // namespace sluice::server
