#pragma once
// Metrics registry and its Prometheus text exposition (format 0.0.4, what GET /metrics
// serves). The server registers families once at start-up, resolves the label sets it
// needs into Counter / Gauge / Histogram references (stable for the registry's lifetime),
// and updates those from any thread; a scrape renders everything.
//
// Hot path: updates never lock. Counter and Gauge are one relaxed atomic each; a
// Histogram observation touches one cache-line-aligned shard of per-bucket counters (the
// shard picked per thread), so front-end threads observing latencies do not contend.
// Locks are taken only to register a family, to resolve a new label set (Family::with),
// and while rendering.
//
// Names follow Prometheus' rules and promtool's lints: metric names match
// [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not "__*"), counters end in
// "_total" (the name given is the name exposed), histograms have no "le" label and expose
// <name>_bucket{le=...}, <name>_sum and <name>_count. A broken name is a bug and fails a
// SLUICE_CHECK at registration.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/check.h"

namespace sluice::frontend {

// The Content-Type of a rendered registry.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// A monotonically increasing value. inc() takes v >= 0.
class Counter {
 public:
  void inc(double v = 1.0) {
    SLUICE_DCHECK(v >= 0.0, "counter increment {} is negative", v);
    value_.fetch_add(v, std::memory_order_relaxed);
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  void dec(double v = 1.0) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into buckets with inclusive upper bounds (Prometheus "le"), plus an
// implicit +Inf bucket, and keeps their sum.
class Histogram {
 public:
  // `bounds`: finite, strictly increasing (SLUICE_CHECK); a trailing +Inf is dropped.
  explicit Histogram(std::span<const double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // NaN is ignored (it would poison _sum forever); +Inf lands in the +Inf bucket.
  void observe(double v);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // [bounds + 1]: observations <= bounds[i]; last is +Inf
    double sum = 0.0;
    uint64_t count = 0;  // == cumulative.back()
  };
  // A sum over the shards. Observations racing with it may be half counted (in a bucket
  // but not yet in the sum); the buckets are always cumulative and count matches them.
  Snapshot snapshot() const;
  std::span<const double> bounds() const { return bounds_; }

 private:
  static constexpr size_t kNumShards = 8;
  struct alignas(64) Line {
    std::atomic<uint64_t> cell[8];
  };
  std::atomic<uint64_t>& cell(size_t shard, size_t index) const;

  std::vector<double> bounds_;
  size_t lines_per_shard_ = 0;     // cells per shard: one per bucket (+Inf too), then the sum
  std::unique_ptr<Line[]> lines_;  // [kNumShards * lines_per_shard_]
};

enum class MetricType { kCounter, kGauge, kHistogram };

// What every family has: name, help, type and label names; renders itself.
class MetricFamily {
 public:
  virtual ~MetricFamily() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends the HELP and TYPE lines and every sample.
  virtual void render(std::string* out) const = 0;

 protected:
  MetricFamily(std::string name, std::string help, MetricType type,
               std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        label_names_(std::move(label_names)) {}

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
};

// Orders label-value tuples; transparent so lookups need no std::string copies.
struct LabelValuesLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(),
        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

// One metric per label-value tuple. M is Counter, Gauge or Histogram.
template <typename M>
class Family final : public MetricFamily {
 public:
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         std::vector<double> bounds);

  // The metric for these label values, in label_names() order, created (at zero) on first
  // use. The reference stays valid for the registry's lifetime: resolve once and keep it
  // where the update is hot. Values are stored as valid UTF-8 (to_valid_utf8). Any thread.
  M& with(std::span<const std::string_view> label_values);
  M& with(std::initializer_list<std::string_view> label_values) {
    return with(std::span<const std::string_view>(label_values.begin(), label_values.size()));
  }

  void render(std::string* out) const override;
  // Histogram families: the bucket bounds every child gets (+Inf implied); else empty.
  std::span<const double> bucket_bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;       // guards children_ (the map, not the metrics' values)
  std::map<std::vector<std::string>, std::unique_ptr<M>, LabelValuesLess> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;
extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a family, or returns the one already registered under `name` when type,
  // label names (and bounds) are the same; any other clash is a SLUICE_CHECK failure.
  // Families render in registration order. Any thread.
  CounterFamily& counter(std::string_view name, std::string_view help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& gauge(std::string_view name, std::string_view help,
                     std::vector<std::string> label_names = {});
  HistogramFamily& histogram(std::string_view name, std::string_view help,
                             std::vector<std::string> label_names, std::span<const double> bounds);

  // `hook` runs at the start of every render(), before any family is read: the place to
  // copy a snapshot (Engine::stats()) into gauges. Hooks may run on several scraping
  // threads at once and must not register families.
  void add_collect_hook(std::function<void()> hook);

  // Appends the exposition text of every family.
  void render(std::string* out) const;
  std::string render() const;

 private:
  MetricFamily* find_locked(std::string_view name) const;
  void check_name_free_locked(std::string_view name, MetricType type) const;

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_;
  std::vector<std::function<void()>> hooks_;
};

// Text-format helpers, exposed for tests and for the server's own writers.
// A sample value: shortest round-trip decimal, "+Inf", "-Inf" or "NaN".
void append_metric_value(double v, std::string* out);
// A label value with '\\', '"' and '\n' escaped (not the surrounding quotes).
void append_escaped_label_value(std::string_view v, std::string* out);

}  // namespace sluice::frontend
