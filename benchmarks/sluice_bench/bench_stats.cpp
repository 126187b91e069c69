#include "sluice_bench/bench_stats.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace sluice::bench {

double percentile(const std::vector<double>& sorted, double p) {
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Distribution summarize(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  d.mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double sq = 0;
  for (double v : values) sq += (v - d.mean) * (v - d.mean);
  d.std = std::sqrt(sq / n);
  d.median = percentile(values, 50);
  d.p90 = percentile(values, 90);
  d.p95 = percentile(values, 95);
  d.p99 = percentile(values, 99);
  return d;
}

double tpot_s(const RequestResult& r) {
  if (r.output_tokens <= 1) return 0;
  return (r.e2el_s() - r.ttft_s()) / static_cast<double>(r.output_tokens - 1);
}

double peak_output_tokens_per_s(std::span<const RequestResult> results) {
  if (results.empty()) return 0;
  double t0 = results.front().start_s;
  for (const RequestResult& r : results) t0 = std::min(t0, r.start_s);
  std::map<int64_t, int64_t> buckets;
  for (const RequestResult& r : results) {
    for (size_t i = 0; i < r.chunk_times_s.size(); ++i) {
      buckets[static_cast<int64_t>(std::floor(r.chunk_times_s[i] - t0))] += r.chunk_tokens[i];
    }
  }
  int64_t peak = 0;
  for (const auto& [bucket, tokens] : buckets) peak = std::max(peak, tokens);
  return static_cast<double>(peak);
}

Metrics compute_metrics(std::span<const RequestResult> results, double duration_s,
                        const GoodputSlo& slo) {
  Metrics m;
  m.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2el;
  int64_t good = 0;
  for (const RequestResult& r : results) {
    if (!r.success) {
      ++m.failed;
      continue;
    }
    ++m.completed;
    m.total_input_tokens += r.prompt_tokens;
    m.total_output_tokens += r.output_tokens;
    m.total_cached_tokens += r.cached_tokens;
    ttft.push_back(r.ttft_s() * 1e3);
    e2el.push_back(r.e2el_s() * 1e3);
    if (r.output_tokens > 1) tpot.push_back(tpot_s(r) * 1e3);
    for (size_t i = 1; i < r.chunk_times_s.size(); ++i) {
      itl.push_back((r.chunk_times_s[i] - r.chunk_times_s[i - 1]) * 1e3);
    }
    const bool is_good = (!slo.ttft_ms || r.ttft_s() * 1e3 <= *slo.ttft_ms) &&
                         (!slo.tpot_ms || tpot_s(r) * 1e3 <= *slo.tpot_ms) &&
                         (!slo.e2el_ms || r.e2el_s() * 1e3 <= *slo.e2el_ms);
    if (is_good) ++good;
  }
  if (duration_s > 0) {
    m.request_throughput = static_cast<double>(m.completed) / duration_s;
    m.output_throughput = static_cast<double>(m.total_output_tokens) / duration_s;
    m.total_token_throughput =
        static_cast<double>(m.total_input_tokens + m.total_output_tokens) / duration_s;
    if (slo.any()) m.request_goodput = static_cast<double>(good) / duration_s;
  } else if (slo.any()) {
    m.request_goodput = 0.0;
  }
  m.max_output_tokens_per_s = peak_output_tokens_per_s(results);
  // Peak concurrency: sweep the start (+1) and end (-1) events; an end at the same instant
  // as a start is taken first.
  std::vector<std::pair<double, int>> events;
  for (const RequestResult& r : results) {
    events.emplace_back(r.start_s, 1);
    events.emplace_back(r.end_s, -1);
  }
  std::sort(events.begin(), events.end());
  int64_t now = 0;
  for (const auto& [t, delta] : events)
    m.max_concurrent_requests = std::max(m.max_concurrent_requests, now += delta);
  m.ttft_ms = summarize(std::move(ttft));
  m.tpot_ms = summarize(std::move(tpot));
  m.itl_ms = summarize(std::move(itl));
  m.e2el_ms = summarize(std::move(e2el));
  return m;
}

double jain_index(std::span<const double> x) {
  double sum = 0, sq = 0;
  for (double v : x) {
    sum += v;
    sq += v * v;
  }
  if (x.empty() || sq == 0) return 1.0;
  return sum * sum / (static_cast<double>(x.size()) * sq);
}

TenantService tenant_service(std::span<const RequestResult> results, int tenant,
                             double window_end_s) {
  TenantService s;
  for (const RequestResult& r : results) {
    if (r.tenant != tenant || !r.success) continue;
    s.total += r.prompt_tokens + 2 * r.output_tokens;
    if (!r.chunk_times_s.empty() && r.chunk_times_s.front() <= window_end_s)
      s.window += r.prompt_tokens;
    for (size_t i = 0; i < r.chunk_times_s.size(); ++i) {
      if (r.chunk_times_s[i] <= window_end_s) s.window += 2 * r.chunk_tokens[i];
    }
  }
  return s;
}

double fairness_window_end_s(std::span<const RequestResult> results, int num_tenants) {
  if (num_tenants <= 0) return 0;
  std::vector<double> last(static_cast<size_t>(num_tenants), 0.0);
  for (const RequestResult& r : results) {
    if (r.tenant >= 0 && r.tenant < num_tenants)
      last[static_cast<size_t>(r.tenant)] = std::max(last[static_cast<size_t>(r.tenant)], r.end_s);
  }
  return *std::min_element(last.begin(), last.end());
}

std::vector<RequestResult> results_of(std::span<const RequestResult> results, int tenant) {
  std::vector<RequestResult> out;
  for (const RequestResult& r : results) {
    if (r.tenant == tenant) out.push_back(r);
  }
  return out;
}

}  // namespace sluice::bench
