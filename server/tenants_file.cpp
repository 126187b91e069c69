#include "server/tenants_file.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace sluice::server {
namespace {

// Parsing throws this internally; the public functions turn it into a Status.
struct ParseError {
  std::string message;
};

[[noreturn]] void fail(std::string message) { throw ParseError{std::move(message)}; }

// What a value looks like in a message: short, on one line.
std::string shown(const YAML::Node& v) {
  if (!v.IsDefined() || v.IsNull()) return "null";
  if (v.IsScalar()) {
    std::string s = v.Scalar();
    if (s.size() > 40) s = s.substr(0, 40) + "...";
    return "'" + s + "'";
  }
  return v.IsSequence() ? "a list" : "a mapping";
}

void check_keys(const YAML::Node& map, const std::string& where, std::initializer_list<std::string_view> allowed) {
  if (!map.IsMap()) fail(fmt::format("{} must be a mapping, got {}", where, shown(map)));
  std::set<std::string> seen;
  for (const auto& kv : map) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      fail(fmt::format("{}: unknown key '{}' (known: {})", where, key, fmt::join(allowed, ", ")));
    }
    if (!seen.insert(key).second) fail(fmt::format("{}: key '{}' given twice", where, key));
  }
}

std::string scalar_string(const YAML::Node& v, const std::string& what) {
  if (!v.IsScalar()) {
    fail(fmt::format("{} must be a string, got {}", what, shown(v)));
  }
  return v.Scalar();
}

int64_t scalar_int(const YAML::Node& v, const std::string& what) {
  if (!v.IsScalar()) fail(fmt::format("{} must be an integer, got {}", what, shown(v)));
  const std::string& s = v.Scalar();
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || errno != 0 || end != s.c_str() + s.size()) {
    fail(fmt::format("{} must be an integer, got {}", what, shown(v)));
  }
  return x;
}

double scalar_double(const YAML::Node& v, const std::string& what) {
  if (!v.IsScalar()) fail(fmt::format("{} must be a number, got {}", what, shown(v)));
  const std::string& s = v.Scalar();
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (s.empty() || errno != 0 || end != s.c_str() + s.size() || !std::isfinite(x)) {
    fail(fmt::format("{} must be a finite number, got {}", what, shown(v)));
  }
  return x;
}

// A string or a list of strings (at least one).
std::vector<std::string> string_list(const YAML::Node& v, const std::string& what) {
  std::vector<std::string> out;
  if (v.IsScalar()) {
    out.push_back(scalar_string(v, what));
  } else if (v.IsSequence()) {
    for (size_t i = 0; i < v.size(); ++i) out.push_back(scalar_string(v[i], fmt::format("{}[{}]", what, i)));
  } else {
    fail(fmt::format("{} must be a string or a list of strings, got {}", what, shown(v)));
  }
  if (out.empty()) fail(fmt::format("{} must not be empty", what));
  return out;
}

std::vector<scheduler::Sha256Digest> digest_list(const YAML::Node& v, const std::string& what) {
  std::vector<scheduler::Sha256Digest> out;
  for (const std::string& hex : string_list(v, what)) {
    auto d = parse_hex_digest(hex);
    if (!d) {
      fail(fmt::format("{}: '{}' is not a SHA-256 digest (64 lowercase hex characters; "
                       "`printf %s KEY | sha256sum` makes one)",
                       what, hex.size() > 80 ? hex.substr(0, 80) + "..." : hex));
    }
    out.push_back(*d);
  }
  return out;
}

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::optional<int64_t> positive_limit(const YAML::Node& limits, const char* key, const std::string& where) {
  const YAML::Node v = limits[key];
  if (!v.IsDefined() || v.IsNull()) return std::nullopt;
  const int64_t x = scalar_int(v, fmt::format("{}.limits.{}", where, key));
  if (x < 1) fail(fmt::format("{}.limits.{} must be >= 1, got {}", where, key, x));
  return x;
}

TenantSpec parse_tenant(const YAML::Node& t, size_t index) {
  std::string where = fmt::format("tenants[{}]", index);
  if (!t.IsMap()) fail(fmt::format("{} must be a mapping, got {}", where, shown(t)));
  if (!t["id"].IsDefined()) fail(fmt::format("{}: 'id' is required", where));
  TenantSpec s;
  s.id = scalar_string(t["id"], where + ".id");
  if (!valid_id(s.id)) {
    fail(fmt::format("{}.id '{}' must match [a-z0-9_-]{{1,64}}", where,
                     s.id.size() > 80 ? s.id.substr(0, 80) + "..." : s.id));
  }
  where += fmt::format(" ({})", s.id);
  check_keys(t, where,
             {"id", "api_key_sha256", "weight", "priority", "models", "cache_namespace", "limits"});
  if (!t["api_key_sha256"].IsDefined()) fail(fmt::format("{}: 'api_key_sha256' is required", where));
  s.key_digests = digest_list(t["api_key_sha256"], where + ".api_key_sha256");
  if (t["weight"].IsDefined()) {
    s.weight = scalar_double(t["weight"], where + ".weight");
    if (!(s.weight > 0)) fail(fmt::format("{}.weight must be > 0, got {}", where, s.weight));
  }
  if (t["priority"].IsDefined()) {
    const int64_t p = scalar_int(t["priority"], where + ".priority");
    if (p < INT32_MIN || p > INT32_MAX) fail(fmt::format("{}.priority {} is out of the int32 range", where, p));
    s.priority = static_cast<int32_t>(p);
  }
  if (t["models"].IsDefined()) {
    s.models = string_list(t["models"], where + ".models");
    for (const std::string& m : s.models) {
      if (m.empty()) fail(fmt::format("{}.models: a model id must not be empty", where));
    }
  }
  s.cache_namespace = s.id;
  if (t["cache_namespace"].IsDefined()) {
    s.cache_namespace = scalar_string(t["cache_namespace"], where + ".cache_namespace");
    if (s.cache_namespace.empty()) fail(fmt::format("{}.cache_namespace must not be empty", where));
  }
  if (const YAML::Node limits = t["limits"]; limits.IsDefined() && !limits.IsNull()) {
    check_keys(limits, where + ".limits",
               {"requests_per_minute", "tokens_per_minute", "max_concurrent_requests",
                "max_tokens_per_request", "max_prompt_tokens"});
    s.limits.requests_per_minute = positive_limit(limits, "requests_per_minute", where);
    s.limits.tokens_per_minute = positive_limit(limits, "tokens_per_minute", where);
    s.limits.max_concurrent_requests = positive_limit(limits, "max_concurrent_requests", where);
    s.limits.max_tokens_per_request = positive_limit(limits, "max_tokens_per_request", where);
    s.limits.max_prompt_tokens = positive_limit(limits, "max_prompt_tokens", where);
  }
  return s;
}

TenantsConfig parse_root(const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) fail("the file is empty (expected a mapping with 'tenants')");
  check_keys(root, "top level", {"admin_api_key_sha256", "tenants"});
  TenantsConfig cfg;
  if (const YAML::Node admin = root["admin_api_key_sha256"]; admin.IsDefined() && !admin.IsNull()) {
    cfg.admin_digests = digest_list(admin, "admin_api_key_sha256");
  }
  const YAML::Node tenants = root["tenants"];
  if (!tenants.IsDefined() || !tenants.IsSequence() || tenants.size() == 0) {
    fail(fmt::format("'tenants' must be a list of at least one tenant, got {}", shown(tenants)));
  }
  std::map<scheduler::Sha256Digest, std::string> owner;  // digest -> who uses it
  for (const auto& d : cfg.admin_digests) owner.emplace(d, "admin_api_key_sha256");
  std::set<std::string> ids;
  for (size_t i = 0; i < tenants.size(); ++i) {
    TenantSpec s = parse_tenant(tenants[i], i);
    if (!ids.insert(s.id).second) fail(fmt::format("tenants[{}]: id '{}' is used twice", i, s.id));
    for (const auto& d : s.key_digests) {
      const auto [it, fresh] = owner.emplace(d, "tenant " + s.id);
      if (!fresh) {
        // One key naming two principals would make authentication ambiguous.
        fail(fmt::format("tenants[{}] ({}): api_key_sha256 {} is also used by {}", i, s.id,
                         scheduler::to_hex(d), it->second));
      }
    }
    cfg.tenants.push_back(std::move(s));
  }
  return cfg;
}

}  // namespace

bool TenantSpec::may_use(std::string_view model) const {
  return std::any_of(models.begin(), models.end(),
                     [&](const std::string& m) { return m == "*" || m == model; });
}

std::optional<scheduler::Sha256Digest> parse_hex_digest(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  scheduler::Sha256Digest d{};
  for (size_t i = 0; i < 64; ++i) {
    const char c = hex[i];
    int v = 0;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    d[i / 2] = static_cast<uint8_t>(d[i / 2] | (i % 2 == 0 ? v << 4 : v));
  }
  return d;
}

StatusOr<TenantsConfig> parse_tenants_yaml(std::string_view text) {
  try {
    const YAML::Node root = YAML::Load(std::string(text));
    return parse_root(root);
  } catch (const ParseError& e) {
    return Status::invalid_argument(e.message);
  } catch (const YAML::Exception& e) {
    // mark is 0-based; editors count from 1.
    return Status::invalid_argument(fmt::format("YAML error at line {}, column {}: {}", e.mark.line + 1,
                                                e.mark.column + 1, e.msg));
  }
}

StatusOr<TenantsConfig> load_tenants_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::not_found(fmt::format("tenants file {}: cannot open it", path));
  std::ostringstream text;
  text << in.rdbuf();
  auto cfg = parse_tenants_yaml(text.str());
  if (!cfg.is_ok()) {
    return Status(cfg.status().code(), fmt::format("tenants file {}: {}", path, cfg.status().message()));
  }
  return cfg;
}

TenantsConfig single_tenant_config(std::string_view api_key) {
  TenantsConfig cfg;
  TenantSpec s;
  s.id = "default";
  s.cache_namespace = "default";
  if (api_key.empty()) {
    cfg.open = true;
  } else {
    s.key_digests.push_back(scheduler::sha256(api_key));
  }
  cfg.tenants.push_back(std::move(s));
  return cfg;
}

}  // namespace sluice::server
