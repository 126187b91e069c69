#include "sluice_bench/report.h"

#include <fmt/format.h>

#include <cmath>
#include <map>

namespace sluice::bench {

using json = nlohmann::json;

namespace {

json rate_json(double rate) { return std::isinf(rate) ? json("inf") : json(rate); }

void put_distribution(json& j, std::string_view name, const Distribution& d) {
  j[fmt::format("mean_{}_ms", name)] = d.mean;
  j[fmt::format("median_{}_ms", name)] = d.median;
  j[fmt::format("std_{}_ms", name)] = d.std;
  j[fmt::format("p90_{}_ms", name)] = d.p90;
  j[fmt::format("p95_{}_ms", name)] = d.p95;
  j[fmt::format("p99_{}_ms", name)] = d.p99;
}

json metrics_json(const Metrics& m) {
  json j;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["duration"] = m.duration_s;
  j["total_input_tokens"] = m.total_input_tokens;
  j["total_output_tokens"] = m.total_output_tokens;
  j["total_cached_tokens"] = m.total_cached_tokens;
  j["request_throughput"] = m.request_throughput;
  j["request_goodput"] = m.request_goodput ? json(*m.request_goodput) : json(nullptr);
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  j["max_output_tokens_per_s"] = m.max_output_tokens_per_s;
  j["max_concurrent_requests"] = m.max_concurrent_requests;
  put_distribution(j, "ttft", m.ttft_ms);
  put_distribution(j, "tpot", m.tpot_ms);
  put_distribution(j, "itl", m.itl_ms);
  put_distribution(j, "e2el", m.e2el_ms);
  return j;
}

std::string row(std::string_view name, std::string value) {
  return fmt::format("{:<42}{:>12}\n", name, value);
}
std::string num(double v) { return fmt::format("{:.2f}", v); }
std::string title(std::string_view t) {
  const size_t width = 54;
  const size_t pad = t.size() + 2 >= width ? 0 : width - t.size() - 2;
  return fmt::format("{0:-<{1}} {2} {0:-<{3}}\n", "", pad / 2, t, pad - pad / 2);
}

void distribution_rows(std::string& s, std::string_view head, std::string_view abbr,
                       const Distribution& d) {
  s += title(head);
  s += row(fmt::format("Mean {} (ms):", abbr), num(d.mean));
  s += row(fmt::format("Median {} (ms):", abbr), num(d.median));
  s += row(fmt::format("Std {} (ms):", abbr), num(d.std));
  s += row(fmt::format("P90 {} (ms):", abbr), num(d.p90));
  s += row(fmt::format("P95 {} (ms):", abbr), num(d.p95));
  s += row(fmt::format("P99 {} (ms):", abbr), num(d.p99));
}

std::string concurrency_text(int64_t c) { return c > 0 ? std::to_string(c) : std::string("none"); }
std::string rate_text(double r) {
  return std::isinf(r) ? std::string("inf") : fmt::format("{:g}", r);
}

}  // namespace

RunReport make_report(RunInfo info, std::span<const RequestResult> results, double duration_s,
                      int64_t output_len_mismatches, const std::vector<TenantSpec>& tenants) {
  RunReport rep;
  rep.info = std::move(info);
  rep.metrics = compute_metrics(results, duration_s, rep.info.goodput);
  rep.output_len_mismatches = output_len_mismatches;
  std::map<std::string, int64_t> errors;
  for (const RequestResult& r : results) {
    if (!r.success) ++errors[r.error];
  }
  for (const auto& [msg, count] : errors) {
    if (rep.errors.size() == 10) break;
    rep.errors.push_back(fmt::format("{} x {}", count, msg));
  }
  if (!tenants.empty()) {
    const int n = static_cast<int>(tenants.size());
    rep.fairness_window_s = fairness_window_end_s(results, n);
    std::vector<double> normalized;
    for (int i = 0; i < n; ++i) {
      TenantReport t;
      t.spec = tenants[static_cast<size_t>(i)];
      const std::vector<RequestResult> mine = results_of(results, i);
      t.metrics = compute_metrics(mine, duration_s, rep.info.goodput);
      t.service = tenant_service(results, i, rep.fairness_window_s);
      normalized.push_back(static_cast<double>(t.service.window) / t.spec.weight);
      rep.tenants.push_back(std::move(t));
    }
    rep.jain_fairness_index = jain_index(normalized);
  }
  return rep;
}

json to_json(const RunReport& rep) {
  const RunInfo& in = rep.info;
  json j = metrics_json(rep.metrics);
  j["date"] = in.date;
  j["backend"] = "openai";
  j["base_url"] = in.base_url;
  j["endpoint_type"] = in.endpoint;
  j["model_id"] = in.model_id;
  j["dataset_name"] = in.dataset;
  j["num_prompts"] = in.num_prompts;
  j["request_rate"] = rate_json(in.request_rate);
  j["burstiness"] = 1.0;
  j["max_concurrency"] = in.max_concurrency > 0 ? json(in.max_concurrency) : json(nullptr);
  j["input_len"] = in.input_len;
  j["output_len"] = in.output_len;
  j["prefix_len"] = in.prefix_len;
  j["range_ratio"] = in.range_ratio;
  j["seed"] = in.seed;
  j["input_lens_exact"] = in.input_lens_exact;
  j["ignore_eos"] = in.ignore_eos;
  j["output_len_mismatches"] = rep.output_len_mismatches;
  json slo = json::object();
  if (in.goodput.ttft_ms) slo["ttft"] = *in.goodput.ttft_ms;
  if (in.goodput.tpot_ms) slo["tpot"] = *in.goodput.tpot_ms;
  if (in.goodput.e2el_ms) slo["e2el"] = *in.goodput.e2el_ms;
  j["goodput_slo_ms"] = std::move(slo);
  j["errors"] = rep.errors;
  json tenants = json::object();
  for (const TenantReport& t : rep.tenants) {
    json tj = metrics_json(t.metrics);
    tj["api_key_hint"] = key_hint(t.spec.api_key);
    tj["request_rate"] = rate_json(t.spec.request_rate);
    tj["weight"] = t.spec.weight;
    tj["service_tokens"] = t.service.total;
    tj["service_tokens_in_window"] = t.service.window;
    tenants[t.spec.label] = std::move(tj);
  }
  j["tenants"] = std::move(tenants);
  if (!rep.tenants.empty()) {
    j["jain_fairness_index"] = rep.jain_fairness_index;
    j["fairness_window_s"] = rep.fairness_window_s;
  }
  return j;
}

std::string format_table(const RunReport& rep) {
  const Metrics& m = rep.metrics;
  std::string s = fmt::format("{:=^54}\n", " Serving Benchmark Result ");
  s += row("Endpoint:", rep.info.endpoint);
  s += row("Successful requests:", std::to_string(m.completed));
  s += row("Failed requests:", std::to_string(m.failed));
  s += row("Request rate (req/s):", rate_text(rep.info.request_rate));
  s += row("Maximum request concurrency:", concurrency_text(rep.info.max_concurrency));
  s += row("Benchmark duration (s):", num(m.duration_s));
  s += row("Total input tokens:", std::to_string(m.total_input_tokens));
  s += row("Total cached prompt tokens:", std::to_string(m.total_cached_tokens));
  s += row("Total generated tokens:", std::to_string(m.total_output_tokens));
  s += row("Request throughput (req/s):", num(m.request_throughput));
  if (m.request_goodput) s += row("Request goodput (req/s):", num(*m.request_goodput));
  s += row("Output token throughput (tok/s):", num(m.output_throughput));
  s += row("Peak output token throughput (tok/s):", num(m.max_output_tokens_per_s));
  s += row("Total token throughput (tok/s):", num(m.total_token_throughput));
  s += row("Peak concurrent requests:", std::to_string(m.max_concurrent_requests));
  distribution_rows(s, "Time to First Token", "TTFT", m.ttft_ms);
  distribution_rows(s, "Time per Output Token (excl. 1st token)", "TPOT", m.tpot_ms);
  distribution_rows(s, "Inter-token Latency", "ITL", m.itl_ms);
  distribution_rows(s, "End-to-end Latency", "E2EL", m.e2el_ms);
  if (!rep.tenants.empty()) {
    s += title("Tenants");
    s += fmt::format("{:<9} {:>6} {:>7} {:>6} {:>8} {:>9} {:>9} {:>9} {:>10} {:>7}\n", "tenant",
                     "rate", "weight", "done", "fail", "out tok/s", "TTFT ms", "TPOT ms", "service",
                     "/weight");
    for (const TenantReport& t : rep.tenants) {
      s += fmt::format(
          "{:<9} {:>6} {:>7.3g} {:>6} {:>8} {:>9.2f} {:>9.2f} {:>9.2f} {:>10} {:>7.0f}\n",
          t.spec.label, rate_text(t.spec.request_rate), t.spec.weight, t.metrics.completed,
          t.metrics.failed, t.metrics.output_throughput, t.metrics.ttft_ms.mean,
          t.metrics.tpot_ms.mean, t.service.window,
          static_cast<double>(t.service.window) / t.spec.weight);
    }
    s += row("Fairness window (s):", num(rep.fairness_window_s));
    s += row("Jain's fairness index:", fmt::format("{:.4f}", rep.jain_fairness_index));
  }
  s += fmt::format("{:=^54}\n", "");
  if (!rep.info.input_lens_exact)
    s += "note: input lengths are estimates (the server has no /tokenize)\n";
  if (rep.output_len_mismatches > 0) {
    s +=
        fmt::format("note: {} completed requests returned an output length other than max_tokens\n",
                    rep.output_len_mismatches);
  }
  for (const std::string& e : rep.errors) s += fmt::format("error: {}\n", e);
  return s;
}

std::string format_sweep_summary(const std::vector<RunReport>& reports) {
  std::string s = fmt::format(
      "{:>6} {:>5} {:>5} {:>5} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "rate",
      "conc", "done", "fail", "req/s", "out tok/s", "peak tok/s", "TTFT mean", "TTFT p99",
      "TPOT mean", "ITL mean", "E2EL mean");
  for (const RunReport& r : reports) {
    const Metrics& m = r.metrics;
    s += fmt::format(
        "{:>6} {:>5} {:>5} {:>5} {:>8.3f} {:>10.2f} {:>10.0f} {:>10.1f} {:>10.1f} {:>10.2f} "
        "{:>10.2f} {:>10.1f}\n",
        rate_text(r.info.request_rate), concurrency_text(r.info.max_concurrency), m.completed,
        m.failed, m.request_throughput, m.output_throughput, m.max_output_tokens_per_s,
        m.ttft_ms.mean, m.ttft_ms.p99, m.tpot_ms.mean, m.itl_ms.mean, m.e2el_ms.mean);
  }
  s += "(latencies in ms)\n";
  return s;
}

}  // namespace sluice::bench
