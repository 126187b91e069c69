#pragma once
// What one benchmark run measured, reduced to vLLM's serving-benchmark figures. Pure
// functions over the per-request records the runner collects; times are seconds from the
// start of the run in, milliseconds out (as vLLM reports them).
//
// Definitions (vLLM's benchmark_serving):
//   TTFT  first content chunk - request start
//   TPOT  (E2EL - TTFT) / (output_tokens - 1), per request with more than one output token
//   ITL   every gap between successive content chunks, pooled over requests
//   E2EL  last byte of the response - request start
//   max_output_tokens_per_s  the most output tokens that arrived in one 1-second bucket
//   request_goodput  completed requests meeting every --goodput SLO, per second

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sluice_bench/bench_options.h"  // GoodputSlo

namespace sluice::bench {

struct RequestResult {
  bool success = false;
  std::string error;   // why it failed ("" on success)
  int tenant = -1;     // index into the --tenant list, -1 without tenants
  double start_s = 0;  // when the request was sent
  double end_s = 0;    // when its response ended (or failed)
  // Each content chunk (an SSE event with new text or token ids): arrival time and the
  // tokens it carried (its token_ids when the server sends them, else 1).
  std::vector<double> chunk_times_s;
  std::vector<int64_t> chunk_tokens;
  int64_t prompt_tokens = 0;  // usage.prompt_tokens, else the dataset's count
  int64_t output_tokens = 0;  // usage.completion_tokens, else the chunks' tokens
  int64_t cached_tokens = 0;  // usage.prompt_tokens_details.cached_tokens (0 when absent)

  double ttft_s() const {
    return chunk_times_s.empty() ? end_s - start_s : chunk_times_s.front() - start_s;
  }
  double e2el_s() const { return end_s - start_s; }
};

// mean, median, population standard deviation (numpy's std) and percentiles with linear
// interpolation between closest ranks (numpy's default), in the unit of the input.
struct Distribution {
  double mean = 0, median = 0, std = 0, p90 = 0, p95 = 0, p99 = 0;
};
Distribution summarize(std::vector<double> values);  // all 0 for no values
// `p` in [0, 100] of `sorted` (ascending, non-empty).
double percentile(const std::vector<double>& sorted, double p);

// A request's TPOT in seconds: (e2el - ttft) / (output_tokens - 1), 0 when it produced one
// token or none (vLLM counts such a request as meeting any TPOT SLO).
double tpot_s(const RequestResult& r);

struct Metrics {
  int64_t completed = 0;
  int64_t failed = 0;
  double duration_s = 0;
  int64_t total_input_tokens = 0;         // of completed requests
  int64_t total_output_tokens = 0;        // of completed requests
  int64_t total_cached_tokens = 0;        // of completed requests
  double request_throughput = 0;          // completed / s
  double output_throughput = 0;           // output tokens / s
  double total_token_throughput = 0;      // (input + output) tokens / s
  std::optional<double> request_goodput;  // only with a --goodput SLO
  double max_output_tokens_per_s = 0;
  int64_t max_concurrent_requests = 0;  // most requests in flight at once
  Distribution ttft_ms, tpot_ms, itl_ms, e2el_ms;
};

// The figures for `results` (completed and failed) over a run of `duration_s` seconds.
// Latency distributions cover completed requests only.
Metrics compute_metrics(std::span<const RequestResult> results, double duration_s,
                        const GoodputSlo& slo);

// The largest number of output tokens whose chunks arrived within one 1-second bucket
// [k, k+1) counted from the earliest request start (vLLM's max_output_tokens_per_s).
double peak_output_tokens_per_s(std::span<const RequestResult> results);

// Jain's fairness index (sum x)^2 / (n * sum x^2) over x >= 0: 1 when all equal, 1/n when
// one gets everything; 1 for no values or all zero.
double jain_index(std::span<const double> x);

// Service a tenant received, in weighted tokens: prompt tokens x1 + generated tokens x2.
// `total`: every completed request's. `window`: what arrived by `window_end_s` (the prompt
// counts when its first chunk arrived, generated tokens chunk by chunk), so tenants are
// compared while all of them still had work queued.
struct TenantService {
  int64_t total = 0;
  int64_t window = 0;
};
TenantService tenant_service(std::span<const RequestResult> results, int tenant,
                             double window_end_s);

// The end of the window in which every tenant still had requests: the earliest, over
// tenants, of its last request's end. 0 for no tenants.
double fairness_window_end_s(std::span<const RequestResult> results, int num_tenants);

// Results of tenant `tenant` only (copies).
std::vector<RequestResult> results_of(std::span<const RequestResult> results, int tenant);

}  // namespace sluice::bench
