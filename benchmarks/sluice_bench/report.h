#pragma once
// A run's report: the vLLM-keyed JSON record (--save-result) and the table on stdout,
// plus per-tenant figures and Jain's fairness index when --tenant is given. Pure.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sluice_bench/bench_options.h"
#include "sluice_bench/bench_stats.h"

namespace sluice::bench {

// What was asked for (echoed into the JSON so a result file stands on its own).
struct RunInfo {
  std::string date;  // local time, YYYYMMDD-HHMMSS (vLLM's format)
  std::string base_url;
  std::string endpoint;  // "completions" or "chat"
  std::string model_id;
  std::string dataset;          // random, prefix or jsonl
  int64_t num_prompts = 0;      // requests sent in this run (all tenants)
  double request_rate = 0;      // +inf: all at once (without tenants)
  int64_t max_concurrency = 0;  // 0: none
  int64_t input_len = 0, output_len = 0, prefix_len = 0;
  double range_ratio = 0;
  uint64_t seed = 0;
  bool input_lens_exact = true;  // false: text prompts sized by estimate (no /tokenize)
  bool ignore_eos = true;        // false: the server refused it (lengths may fall short)
  GoodputSlo goodput;
};

struct TenantReport {
  TenantSpec spec;
  Metrics metrics;
  TenantService service;
};

struct RunReport {
  RunInfo info;
  Metrics metrics;
  int64_t output_len_mismatches = 0;
  std::vector<std::string> errors;  // distinct failure messages, at most 10, with counts
  std::vector<TenantReport> tenants;
  double fairness_window_s = 0;
  double jain_fairness_index = 1;  // over tenants' windowed service / weight
};

// Reduces a run's records to its report; `tenants` empty without --tenant.
RunReport make_report(RunInfo info, std::span<const RequestResult> results, double duration_s,
                      int64_t output_len_mismatches, const std::vector<TenantSpec>& tenants);

// The record --save-result writes: vLLM's key names (completed, failed, duration,
// request_throughput, output_throughput, total_token_throughput, {mean,median,std,p90,p95,
// p99}_{ttft,tpot,itl,e2el}_ms, max_output_tokens_per_s, request_goodput, ...), the run's
// settings, "total_cached_tokens", and "tenants" (an object keyed by tenant label; empty
// without tenants) with "jain_fairness_index". request_rate inf is written as "inf".
nlohmann::json to_json(const RunReport& report);

// The human-readable table of one run (and its tenants).
std::string format_table(const RunReport& report);
// One line per run, for a sweep.
std::string format_sweep_summary(const std::vector<RunReport>& reports);

}  // namespace sluice::bench
