#pragma once
// One benchmark run: sends the planned requests at their arrival times (at most
// max_concurrency in flight), streams every response, and records per-request timings.
// Runs an io_context on the calling thread until the last response ends; prints a
// progress line to stderr meanwhile.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice_bench/bench_options.h"
#include "sluice_bench/bench_stats.h"
#include "sluice_bench/dataset.h"
#include "sluice_bench/openai_wire.h"

namespace sluice::bench {

struct RunPlan {
  Endpoint endpoint;
  RequestShape shape;
  std::string path;  // "/v1/completions" or "/v1/chat/completions"
  std::vector<BenchPrompt> prompts;
  std::vector<Arrival> arrivals;      // in time order; prompt_index into `prompts`
  std::vector<std::string> api_keys;  // per tenant; without tenants one entry ("" = none)
  int64_t max_concurrency = 0;        // 0: no limit
  std::chrono::milliseconds request_timeout{std::chrono::minutes(10)};
  std::string label;  // shown in the progress line
};

struct RunOutput {
  std::vector<RequestResult> results;  // one per arrival, in arrival order
  double duration_s = 0;               // first dispatch to last response end
  int64_t connections_opened = 0;
  // Completed requests whose output length differs from the max_tokens asked for (the
  // server did not honour ignore_eos, or stopped early).
  int64_t output_len_mismatches = 0;
};

RunOutput run_benchmark(const RunPlan& plan);

}  // namespace sluice::bench
