#include "sluice_bench/bench_options.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

namespace sluice::bench {
namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (true) {
    const size_t next = text.find(sep, pos);
    out.push_back(
        text.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos));
    if (next == std::string_view::npos) return out;
    pos = next + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<double> to_double(std::string_view s) {
  s = trim(s);
  if (s == "inf" || s == "Inf" || s == "INF") return std::numeric_limits<double>::infinity();
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || std::isnan(v))
    return std::nullopt;
  return v;
}

std::optional<int64_t> to_int(std::string_view s) {
  s = trim(s);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::string Endpoint::host_header() const { return host + ":" + port; }

StatusOr<Endpoint> parse_base_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return Status::invalid_argument(fmt::format(
        "--base-url '{}' must start with http:// (TLS is not supported; put a proxy in front)",
        url));
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  Endpoint ep;
  ep.base_path = std::string(path);
  std::string_view port = "80";
  if (!authority.empty() && authority.front() == '[') {  // [v6]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return Status::invalid_argument(fmt::format("--base-url '{}': unclosed '['", url));
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return Status::invalid_argument(fmt::format("--base-url '{}': bad port", url));
      port = after.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  const std::optional<int64_t> p = to_int(port);
  if (ep.host.empty() || !p || *p < 1 || *p > 65535) {
    return Status::invalid_argument(
        fmt::format("--base-url '{}' needs http://HOST[:PORT] with a port in 1..65535", url));
  }
  ep.port = std::to_string(*p);
  if (ep.base_path.size() >= 3 && ep.base_path.substr(ep.base_path.size() - 3) == "/v1") {
    return Status::invalid_argument(
        fmt::format("--base-url '{}' must not end in /v1: give the server root", url));
  }
  return ep;
}

StatusOr<std::vector<int64_t>> parse_count_list(std::string_view text, std::string_view flag) {
  std::vector<int64_t> out;
  for (std::string_view item : split(text, ',')) {
    const std::optional<int64_t> v = to_int(item);
    if (!v || *v < 1) {
      return Status::invalid_argument(
          fmt::format("{} '{}': '{}' is not an integer >= 1", flag, text, trim(item)));
    }
    out.push_back(*v);
  }
  return out;
}

StatusOr<std::vector<double>> parse_rate_list(std::string_view text, std::string_view flag) {
  std::vector<double> out;
  for (std::string_view item : split(text, ',')) {
    const std::optional<double> v = to_double(item);
    if (!v || !(*v > 0)) {
      return Status::invalid_argument(
          fmt::format("{} '{}': '{}' is not a rate > 0 or 'inf'", flag, text, trim(item)));
    }
    out.push_back(*v);
  }
  return out;
}

StatusOr<GoodputSlo> parse_goodput(const std::vector<std::string>& items) {
  GoodputSlo slo;
  for (const std::string& item : items) {
    const size_t colon = item.find(':');
    const std::string_view name = trim(std::string_view(item).substr(0, colon));
    const std::optional<double> ms = colon == std::string::npos
                                         ? std::nullopt
                                         : to_double(std::string_view(item).substr(colon + 1));
    if (!ms || !(*ms > 0) || std::isinf(*ms)) {
      return Status::invalid_argument(fmt::format(
          "--goodput '{}': want NAME:MS with NAME ttft, tpot or e2el and MS > 0", item));
    }
    if (name == "ttft") {
      slo.ttft_ms = *ms;
    } else if (name == "tpot") {
      slo.tpot_ms = *ms;
    } else if (name == "e2el") {
      slo.e2el_ms = *ms;
    } else {
      return Status::invalid_argument(
          fmt::format("--goodput '{}': unknown metric '{}' (ttft, tpot or e2el)", item, name));
    }
  }
  return slo;
}

StatusOr<TenantSpec> parse_tenant(std::string_view text, int index) {
  // KEY:RATE or KEY:RATE:WEIGHT; a key may itself contain ':' so read fields from the right.
  const std::string bad =
      fmt::format("--tenant '{}...': want KEY:RATE or KEY:RATE:WEIGHT", key_hint(text));
  const size_t last = text.rfind(':');
  if (last == std::string_view::npos || last == 0) return Status::invalid_argument(bad);
  TenantSpec t;
  t.label = fmt::format("tenant{}", index);
  const std::optional<double> tail = to_double(text.substr(last + 1));
  if (!tail) return Status::invalid_argument(bad);
  const size_t prev = text.rfind(':', last - 1);
  const std::optional<double> mid = prev == std::string_view::npos || prev == 0
                                        ? std::nullopt
                                        : to_double(text.substr(prev + 1, last - prev - 1));
  if (mid) {  // KEY:RATE:WEIGHT
    t.api_key = std::string(text.substr(0, prev));
    t.request_rate = *mid;
    t.weight = *tail;
  } else {
    t.api_key = std::string(text.substr(0, last));
    t.request_rate = *tail;
  }
  if (t.api_key.empty() || !(t.request_rate > 0) || !(t.weight > 0) || std::isinf(t.weight)) {
    return Status::invalid_argument(bad + " with RATE > 0 (or inf) and a finite WEIGHT > 0");
  }
  return t;
}

std::string key_hint(std::string_view key) {
  if (key.size() <= 4) return std::string(key.size(), '*');
  return std::string(key.substr(0, 4)) + "...";
}

}  // namespace sluice::bench
