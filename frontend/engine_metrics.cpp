#include "frontend/engine_metrics.h"

#include <string>

namespace sluice::frontend {

Counter& EngineMetrics::request_success_for(std::string_view finished_reason) {
  for (size_t i = 0; i < kFinishedReasons.size(); ++i) {
    if (kFinishedReasons[i] == finished_reason) return *request_success[i];
  }
  return request_success_family->with({model_name, finished_reason});
}

void EngineMetrics::set_cache_config(int32_t block_size, int64_t num_gpu_blocks) {
  cache_config_info->with({model_name, std::to_string(block_size), std::to_string(num_gpu_blocks)})
      .set(1.0);
}

EngineMetrics register_engine_metrics(Registry& registry, std::string_view model_name) {
  const std::vector<std::string> model{"model_name"};
  EngineMetrics m{};
  m.model_name = std::string(model_name);
  const std::string_view name = m.model_name;

  m.num_requests_running = &registry
                                .gauge("vllm:num_requests_running",
                                       "Number of requests in model execution batches.", model)
                                .with({name});
  m.num_requests_waiting =
      &registry
           .gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", model)
           .with({name});
  m.kv_cache_usage_perc =
      &registry
           .gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", model)
           .with({name});
  m.cache_config_info =
      &registry.gauge("vllm:cache_config_info", "Information of the KV cache config.",
                      {"model_name", "block_size", "num_gpu_blocks"});

  m.prefix_cache_queries =
      &registry
           .counter("vllm:prefix_cache_queries_total",
                    "Prefix cache queries, in terms of number of queried tokens.", model)
           .with({name});
  m.prefix_cache_hits =
      &registry
           .counter("vllm:prefix_cache_hits_total",
                    "Prefix cache hits, in terms of number of cached tokens.", model)
           .with({name});
  m.num_preemptions = &registry
                           .counter("vllm:num_preemptions_total",
                                    "Cumulative number of preemptions from the engine.", model)
                           .with({name});
  m.prompt_tokens =
      &registry.counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", model)
           .with({name});
  m.generation_tokens =
      &registry
           .counter("vllm:generation_tokens_total", "Number of generation tokens processed.", model)
           .with({name});
  m.request_success_family =
      &registry.counter("vllm:request_success_total", "Count of successfully processed requests.",
                        {"model_name", "finished_reason"});
  for (size_t i = 0; i < kFinishedReasons.size(); ++i) {
    m.request_success[i] = &m.request_success_family->with({name, kFinishedReasons[i]});
  }

  m.time_to_first_token = &registry
                               .histogram("vllm:time_to_first_token_seconds",
                                          "Histogram of time to first token in seconds.", model,
                                          kTimeToFirstTokenBucketsSeconds)
                               .with({name});
  m.inter_token_latency = &registry
                               .histogram("vllm:inter_token_latency_seconds",
                                          "Histogram of inter-token latency in seconds.", model,
                                          kInterTokenLatencyBucketsSeconds)
                               .with({name});
  m.e2e_request_latency = &registry
                               .histogram("vllm:e2e_request_latency_seconds",
                                          "Histogram of e2e request latency in seconds.", model,
                                          kE2eRequestLatencyBucketsSeconds)
                               .with({name});
  m.request_queue_time = &registry
                              .histogram("vllm:request_queue_time_seconds",
                                         "Histogram of time spent in WAITING phase for request.",
                                         model, kRequestQueueTimeBucketsSeconds)
                              .with({name});
  return m;
}

TenantMetrics TenantMetricFamilies::for_tenant(std::string_view tenant) const {
  TenantMetrics t{};
  t.requests = &requests->with({tenant});
  t.prompt_tokens = &prompt_tokens->with({tenant});
  t.generation_tokens = &generation_tokens->with({tenant});
  t.cached_tokens = &cached_tokens->with({tenant});
  for (size_t i = 0; i < kTenantRejectionReasons.size(); ++i) {
    t.rejections[i] = &rejections->with({tenant, kTenantRejectionReasons[i]});
  }
  t.time_to_first_token = &time_to_first_token->with({tenant});
  t.e2e_request_latency = &e2e_request_latency->with({tenant});
  return t;
}

TenantMetricFamilies register_tenant_metrics(Registry& registry) {
  const std::vector<std::string> tenant{"tenant"};
  TenantMetricFamilies f{};
  f.requests = &registry.counter("sluice_tenant_requests_total",
                                 "Requests admitted, per tenant.", tenant);
  f.prompt_tokens = &registry.counter("sluice_tenant_prompt_tokens_total",
                                      "Prompt tokens of finished requests, per tenant.", tenant);
  f.generation_tokens = &registry.counter("sluice_tenant_generation_tokens_total",
                                          "Generated tokens of finished requests, per tenant.", tenant);
  f.cached_tokens = &registry.counter("sluice_tenant_cached_tokens_total",
                                      "Prompt tokens served from the prefix cache, per tenant.", tenant);
  f.rejections = &registry.counter("sluice_tenant_rejections_total",
                                   "Requests refused by the tenant's limits or model list.",
                                   {"tenant", "reason"});
  f.time_to_first_token = &registry.histogram("sluice_tenant_time_to_first_token_seconds",
                                              "Time to first token in seconds, per tenant.", tenant,
                                              kTimeToFirstTokenBucketsSeconds);
  f.e2e_request_latency = &registry.histogram("sluice_tenant_e2e_request_latency_seconds",
                                              "End-to-end request latency in seconds, per tenant.",
                                              tenant, kE2eRequestLatencyBucketsSeconds);
  return f;
}

}  // namespace sluice::frontend
