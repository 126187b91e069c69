#include "frontend/metrics.h"

#include <bit>
#include <charconv>
#include <cmath>

#include "frontend/utf8.h"

namespace sluice::frontend {
namespace {

// Each thread keeps one shard for its whole life; threads are spread round-robin.
size_t this_thread_shard(size_t num_shards) {
  static std::atomic<uint32_t> next{0};
  thread_local const uint32_t mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine % num_shards;
}

bool is_metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool is_label_name(std::string_view s) {
  if (s.empty() || s.starts_with("__")) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string_view type_name(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void append_help(std::string_view help, std::string* out) {
  for (char c : help) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

void append_uint(uint64_t v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

// name{a="x",b="y"[,le="..."]} for one sample; `le` is null outside histogram buckets.
void append_series(std::string_view name, std::string_view suffix,
                   const std::vector<std::string>& label_names,
                   const std::vector<std::string>& label_values, const double* le,
                   std::string* out) {
  out->append(name);
  out->append(suffix);
  if (label_names.empty() && le == nullptr) return;
  out->push_back('{');
  for (size_t i = 0; i < label_names.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(label_names[i]);
    out->append("=\"");
    append_escaped_label_value(label_values[i], out);
    out->push_back('"');
  }
  if (le != nullptr) {
    if (!label_names.empty()) out->push_back(',');
    out->append("le=\"");
    append_metric_value(*le, out);
    out->push_back('"');
  }
  out->push_back('}');
}

void append_header(const MetricFamily& f, std::string* out) {
  out->append("# HELP ");
  out->append(f.name());
  out->push_back(' ');
  append_help(f.help(), out);
  out->append("\n# TYPE ");
  out->append(f.name());
  out->push_back(' ');
  out->append(type_name(f.type()));
  out->push_back('\n');
}

void add_double(std::atomic<uint64_t>& cell, double v) {
  uint64_t old = cell.load(std::memory_order_relaxed);
  while (!cell.compare_exchange_weak(old, std::bit_cast<uint64_t>(std::bit_cast<double>(old) + v),
                                     std::memory_order_relaxed)) {
  }
}

}  // namespace

void append_metric_value(double v, std::string* out) {
  if (std::isnan(v)) {
    out->append("NaN");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
  } else {
    // Shortest round-trip digits, in the notation Go's FormatFloat(v, 'g', -1, 64) picks
    // (what Prometheus' own clients write): exponent form below 1e-4 and from 1e21 up.
    const double mag = std::fabs(v);
    const auto form = (mag != 0 && (mag < 1e-4 || mag >= 1e21)) ? std::chars_format::scientific
                                                                : std::chars_format::fixed;
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof(buf), v, form);
    out->append(buf, r.ptr);
  }
}

void append_escaped_label_value(std::string_view v, std::string* out) {
  for (char c : v) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '"') {
      out->append("\\\"");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

// ---- Histogram ----

Histogram::Histogram(std::span<const double> bounds) : bounds_(bounds.begin(), bounds.end()) {
  if (!bounds_.empty() && std::isinf(bounds_.back()) && bounds_.back() > 0) bounds_.pop_back();
  for (size_t i = 0; i < bounds_.size(); ++i) {
    SLUICE_CHECK(std::isfinite(bounds_[i]), "histogram bound {} is {}", i, bounds_[i]);
    SLUICE_CHECK(i == 0 || bounds_[i - 1] < bounds_[i],
                 "histogram bounds must increase strictly: [{}] = {} after {}", i, bounds_[i],
                 bounds_[i - 1]);
  }
  const size_t cells = bounds_.size() + 2;  // buckets, +Inf, sum
  lines_per_shard_ = (cells + 7) / 8;
  lines_ = std::make_unique<Line[]>(kNumShards * lines_per_shard_);
  for (size_t l = 0; l < kNumShards * lines_per_shard_; ++l) {
    for (auto& c : lines_[l].cell) c.store(0, std::memory_order_relaxed);
  }
}

std::atomic<uint64_t>& Histogram::cell(size_t shard, size_t index) const {
  return lines_[shard * lines_per_shard_ + index / 8].cell[index % 8];
}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  // The first bound >= v ("le" is inclusive); past the end is the +Inf bucket.
  const auto bucket =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  const size_t shard = this_thread_shard(kNumShards);
  cell(shard, bucket).fetch_add(1, std::memory_order_relaxed);
  add_double(cell(shard, bounds_.size() + 1), v);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  const size_t num_buckets = bounds_.size() + 1;
  s.cumulative.assign(num_buckets, 0);
  for (size_t shard = 0; shard < kNumShards; ++shard) {
    for (size_t b = 0; b < num_buckets; ++b) {
      s.cumulative[b] += cell(shard, b).load(std::memory_order_relaxed);
    }
    s.sum += std::bit_cast<double>(cell(shard, num_buckets).load(std::memory_order_relaxed));
  }
  for (size_t b = 1; b < num_buckets; ++b) s.cumulative[b] += s.cumulative[b - 1];
  s.count = s.cumulative.back();
  return s;
}

// ---- Family ----

template <typename M>
Family<M>::Family(std::string name, std::string help, MetricType type,
                  std::vector<std::string> label_names, std::vector<double> bounds)
    : MetricFamily(std::move(name), std::move(help), type, std::move(label_names)),
      bounds_(std::move(bounds)) {}

template <typename M>
M& Family<M>::with(std::span<const std::string_view> label_values) {
  SLUICE_CHECK(label_values.size() == label_names().size(),
               "metric {} takes {} label values, got {}", name(), label_names().size(),
               label_values.size());
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = children_.find(label_values); it != children_.end()) return *it->second;
  std::vector<std::string> key;
  key.reserve(label_values.size());
  for (std::string_view v : label_values) key.push_back(to_valid_utf8(v));
  auto [it, inserted] = children_.try_emplace(std::move(key));
  if (inserted) {
    if constexpr (std::is_same_v<M, Histogram>) {
      it->second = std::make_unique<Histogram>(bounds_);
    } else {
      it->second = std::make_unique<M>();
    }
  }
  return *it->second;
}

template <typename M>
void Family<M>::render(std::string* out) const {
  append_header(*this, out);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, metric] : children_) {
    if constexpr (std::is_same_v<M, Histogram>) {
      const Histogram::Snapshot s = metric->snapshot();
      const std::span<const double> bounds = metric->bounds();
      constexpr double kInf = HUGE_VAL;
      for (size_t b = 0; b < s.cumulative.size(); ++b) {
        append_series(name(), "_bucket", label_names(), values,
                      b < bounds.size() ? &bounds[b] : &kInf, out);
        out->push_back(' ');
        append_uint(s.cumulative[b], out);
        out->push_back('\n');
      }
      append_series(name(), "_sum", label_names(), values, nullptr, out);
      out->push_back(' ');
      append_metric_value(s.sum, out);
      out->push_back('\n');
      append_series(name(), "_count", label_names(), values, nullptr, out);
      out->push_back(' ');
      append_uint(s.count, out);
      out->push_back('\n');
    } else {
      append_series(name(), "", label_names(), values, nullptr, out);
      out->push_back(' ');
      append_metric_value(metric->value(), out);
      out->push_back('\n');
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- Registry ----

MetricFamily* Registry::find_locked(std::string_view name) const {
  for (const auto& f : families_) {
    if (f->name() == name) return f.get();
  }
  return nullptr;
}

// A new family's sample names must not collide with an existing family's (a histogram
// "x" owns "x_bucket", "x_sum" and "x_count").
void Registry::check_name_free_locked(std::string_view name, MetricType type) const {
  auto samples_of = [](std::string_view n, MetricType t) {
    std::vector<std::string> v{std::string(n)};
    if (t == MetricType::kHistogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) v.push_back(std::string(n) + suffix);
    }
    return v;
  };
  const std::vector<std::string> mine = samples_of(name, type);
  for (const auto& f : families_) {
    for (const std::string& theirs : samples_of(f->name(), f->type())) {
      for (const std::string& m : mine) {
        SLUICE_CHECK(m != theirs, "metric {} collides with {} ({})", name, f->name(), m);
      }
    }
  }
}

namespace {

void check_family(std::string_view name, MetricType type,
                  const std::vector<std::string>& label_names) {
  SLUICE_CHECK(is_metric_name(name), "invalid metric name '{}'", name);
  SLUICE_CHECK(type != MetricType::kCounter || name.ends_with("_total"),
               "counter {} must end in _total", name);
  for (size_t i = 0; i < label_names.size(); ++i) {
    SLUICE_CHECK(is_label_name(label_names[i]), "metric {}: invalid label name '{}'", name,
                 label_names[i]);
    SLUICE_CHECK(type != MetricType::kHistogram || label_names[i] != "le",
                 "histogram {} may not have a label 'le'", name);
    for (size_t j = 0; j < i; ++j) {
      SLUICE_CHECK(label_names[i] != label_names[j], "metric {}: label '{}' appears twice", name,
                   label_names[i]);
    }
  }
}

template <typename F>
F& register_family(std::vector<std::unique_ptr<MetricFamily>>& families, MetricFamily* existing,
                   std::string_view name, std::string_view help, MetricType type,
                   std::vector<std::string> label_names, std::vector<double> bounds) {
  if (existing != nullptr) {
    auto* same = dynamic_cast<F*>(existing);
    SLUICE_CHECK(
        same != nullptr && existing->type() == type && existing->label_names() == label_names,
        "metric {} registered twice with different type or labels", name);
    return *same;
  }
  auto f = std::make_unique<F>(std::string(name), std::string(help), type, std::move(label_names),
                               std::move(bounds));
  F& ref = *f;
  families.push_back(std::move(f));
  return ref;
}

}  // namespace

CounterFamily& Registry::counter(std::string_view name, std::string_view help,
                                 std::vector<std::string> label_names) {
  check_family(name, MetricType::kCounter, label_names);
  std::lock_guard<std::mutex> lock(mu_);
  MetricFamily* existing = find_locked(name);
  if (existing == nullptr) check_name_free_locked(name, MetricType::kCounter);
  return register_family<CounterFamily>(families_, existing, name, help, MetricType::kCounter,
                                        std::move(label_names), {});
}

GaugeFamily& Registry::gauge(std::string_view name, std::string_view help,
                             std::vector<std::string> label_names) {
  check_family(name, MetricType::kGauge, label_names);
  std::lock_guard<std::mutex> lock(mu_);
  MetricFamily* existing = find_locked(name);
  if (existing == nullptr) check_name_free_locked(name, MetricType::kGauge);
  return register_family<GaugeFamily>(families_, existing, name, help, MetricType::kGauge,
                                      std::move(label_names), {});
}

HistogramFamily& Registry::histogram(std::string_view name, std::string_view help,
                                     std::vector<std::string> label_names,
                                     std::span<const double> bounds) {
  check_family(name, MetricType::kHistogram, label_names);
  Histogram probe(bounds);  // validates the bounds once, here, not per child
  std::vector<double> normalized(probe.bounds().begin(), probe.bounds().end());
  std::lock_guard<std::mutex> lock(mu_);
  MetricFamily* existing = find_locked(name);
  if (existing == nullptr) {
    check_name_free_locked(name, MetricType::kHistogram);
  } else {
    auto* h = dynamic_cast<HistogramFamily*>(existing);
    SLUICE_CHECK(h != nullptr && std::ranges::equal(h->bucket_bounds(), normalized),
                 "metric {} registered twice with different type or buckets", name);
  }
  return register_family<HistogramFamily>(families_, existing, name, help, MetricType::kHistogram,
                                          std::move(label_names), std::move(normalized));
}

void Registry::add_collect_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  hooks_.push_back(std::move(hook));
}

void Registry::render(std::string* out) const {
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    hooks = hooks_;
  }
  for (const auto& hook : hooks) hook();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) f->render(out);
}

std::string Registry::render() const {
  std::string out;
  out.reserve(16 << 10);
  render(&out);
  return out;
}

}  // namespace sluice::frontend
