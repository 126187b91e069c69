#pragma once
// The vLLM-compatible engine metrics (INTERFACES.md, "Metrics"): Kubernetes inference
// routers read these names, so they are exposed exactly, each series with `model_name`
// (and `finished_reason` on request_success). Counters carry "_total" on the wire as
// vLLM's Python client writes them. The server registers them once per served model and
// fills them: gauges from Engine::stats() in a Registry collect hook at scrape time,
// counters and histograms as requests progress on the front-end threads.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "frontend/metrics.h"

namespace sluice::frontend {

// Bucket upper bounds, in seconds, fine enough below 100 ms for latency SLOs.
inline constexpr std::array<double, 21> kTimeToFirstTokenBucketsSeconds = {
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.15, 0.2,
    0.3,   0.5,    0.75,  1.0,  2.5,  5.0,  10.0, 20.0, 40.0, 80.0};
inline constexpr std::array<double, 28> kInterTokenLatencyBucketsSeconds = {
    0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
    0.075, 0.1,   0.15,  0.2,   0.3,   0.4,    0.5,  0.75,   1.0,   2.5,  5.0,   10.0, 20.0, 40.0};
inline constexpr std::array<double, 25> kE2eRequestLatencyBucketsSeconds = {
    0.01, 0.025, 0.05, 0.1,  0.25, 0.5,  0.8,   1.0,   1.5,   2.0,   2.5,    5.0,   10.0,
    15.0, 20.0,  30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
inline constexpr std::array<double, 22> kRequestQueueTimeBucketsSeconds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.15,
    0.2,    0.3,   0.5,    0.75,  1.0,  2.5,  5.0,  10.0, 20.0, 40.0, 80.0};

// vLLM's finished_reason label values, all created at zero so rate() works from the start.
inline constexpr std::array<std::string_view, 4> kFinishedReasons = {"stop", "length", "abort",
                                                                     "error"};

// One served model's series, resolved. Pointers into the registry: valid for its lifetime,
// never null; update from any thread.
struct EngineMetrics {
  // Gauges, set from an Engine::stats() snapshot.
  Gauge* num_requests_running;  // vllm:num_requests_running
  Gauge* num_requests_waiting;  // vllm:num_requests_waiting
  // vllm:kv_cache_usage_perc: a 0-1 fraction; evictable cached blocks count as free.
  Gauge* kv_cache_usage_perc;
  // Counters. Prefix-cache queries and hits count tokens, as vLLM's do.
  Counter* prefix_cache_queries;  // vllm:prefix_cache_queries_total
  Counter* prefix_cache_hits;     // vllm:prefix_cache_hits_total
  Counter* num_preemptions;       // vllm:num_preemptions_total
  Counter* prompt_tokens;         // vllm:prompt_tokens_total
  Counter* generation_tokens;     // vllm:generation_tokens_total
  // vllm:request_success_total{finished_reason=...}, indexed like kFinishedReasons.
  std::array<Counter*, kFinishedReasons.size()> request_success;
  // Histograms, observed in seconds.
  Histogram* time_to_first_token;  // vllm:time_to_first_token_seconds
  Histogram* inter_token_latency;  // vllm:inter_token_latency_seconds
  Histogram* e2e_request_latency;  // vllm:e2e_request_latency_seconds
  Histogram* request_queue_time;   // vllm:request_queue_time_seconds

  // The request_success counter for a finished_reason; an unknown reason gets its own
  // series (resolved under the family lock: fine once per request, not per token).
  Counter& request_success_for(std::string_view finished_reason);
  // vllm:cache_config_info{model_name,block_size,num_gpu_blocks} = 1, once the KV pool is
  // sized (num_gpu_blocks is the pool's block count on any device, as vLLM reports it).
  void set_cache_config(int32_t block_size, int64_t num_gpu_blocks);

  std::string model_name;
  GaugeFamily* cache_config_info;
  CounterFamily* request_success_family;
};

// Registers the vllm:* families in `registry` (or finds them, when another model already
// did) and resolves `model_name`'s series, all at zero.
EngineMetrics register_engine_metrics(Registry& registry, std::string_view model_name);

// Why a tenant's request was refused (sluice_tenant_rejections_total{tenant,reason}); an
// unauthenticated request has no tenant and is not counted here.
inline constexpr std::array<std::string_view, 6> kTenantRejectionReasons = {
    "rate_limit",          // requests_per_minute
    "tokens_limit",        // tokens_per_minute
    "concurrency_limit",   // max_concurrent_requests
    "max_tokens",          // max_tokens_per_request
    "prompt_too_long",     // max_prompt_tokens
    "model_forbidden"};    // a model not in the tenant's list

// One tenant's series (label `tenant` only; the vllm:* series never carry it). Pointers
// into the registry, valid for its lifetime; update from any thread.
struct TenantMetrics {
  Counter* requests;           // sluice_tenant_requests_total: admitted requests
  Counter* prompt_tokens;      // sluice_tenant_prompt_tokens_total
  Counter* generation_tokens;  // sluice_tenant_generation_tokens_total
  Counter* cached_tokens;      // sluice_tenant_cached_tokens_total: prompt tokens from the prefix cache
  std::array<Counter*, kTenantRejectionReasons.size()> rejections;  // indexed like the reasons
  Histogram* time_to_first_token;  // sluice_tenant_time_to_first_token_seconds
  Histogram* e2e_request_latency;  // sluice_tenant_e2e_request_latency_seconds
};

// The sluice_tenant_* families; for_tenant() resolves (creating at zero) a tenant's series,
// every rejection reason included, so rate() works from the first scrape.
struct TenantMetricFamilies {
  CounterFamily* requests;
  CounterFamily* prompt_tokens;
  CounterFamily* generation_tokens;
  CounterFamily* cached_tokens;
  CounterFamily* rejections;
  HistogramFamily* time_to_first_token;
  HistogramFamily* e2e_request_latency;

  TenantMetrics for_tenant(std::string_view tenant) const;
};

// Registers the sluice_tenant_* families in `registry` (or finds them).
TenantMetricFamilies register_tenant_metrics(Registry& registry);

}  // namespace sluice::frontend
