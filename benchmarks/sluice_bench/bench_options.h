#pragma once
// Parsing of sluice-bench's flag values (INTERFACES.md, "sluice-bench"): the base URL, the
// sweep lists, --goodput SLOs and --tenant specs. Pure functions; main.cpp turns a bad
// value into a usage error.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::bench {

// http://HOST[:PORT][/PATH] (no TLS). `base_path` has no trailing slash ("" or "/x").
struct Endpoint {
  std::string host;
  std::string port;  // "80" when the URL names none
  std::string base_path;
  std::string host_header() const;  // HOST:PORT as the Host header wants it
};
StatusOr<Endpoint> parse_base_url(std::string_view url);

// "1,4,16" -> {1, 4, 16}; every value >= 1.
StatusOr<std::vector<int64_t>> parse_count_list(std::string_view text, std::string_view flag);
// "0.5,2,inf" -> {0.5, 2, +inf}; every value > 0 ("inf": all requests at once).
StatusOr<std::vector<double>> parse_rate_list(std::string_view text, std::string_view flag);

// --goodput ttft:MS tpot:MS e2el:MS (any subset). A request is "good" when it meets every
// SLO given. Values are milliseconds, > 0.
struct GoodputSlo {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;
  bool any() const { return ttft_ms || tpot_ms || e2el_ms; }
};
StatusOr<GoodputSlo> parse_goodput(const std::vector<std::string>& items);

// --tenant KEY:RATE[:WEIGHT]: the tenant's API key, its own Poisson arrival rate (req/s,
// "inf" allowed) and the weight its service is divided by for Jain's index (default 1; give
// the server's tenants-file weight to measure weighted fairness). The key is everything
// before the last one or two ':' fields, so keys may contain ':'.
struct TenantSpec {
  std::string api_key;
  double request_rate = 0;
  double weight = 1.0;
  std::string label;  // "tenant<i>" (keys are secrets: never printed whole)
};
StatusOr<TenantSpec> parse_tenant(std::string_view text, int index);

// "sk-live-abcdef" -> "sk-l...": enough to tell keys apart in a report, not to use them.
std::string key_hint(std::string_view key);

}  // namespace sluice::bench
