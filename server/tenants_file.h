#pragma once
// The tenants file of `sluice serve --tenants FILE` (INTERFACES.md, "Tenants file"): who may
// call the daemon, with which keys, at what share and under which limits. Parsed into plain
// C++ here; the running state (buckets, usage, metrics) is tenants.h's.
//
// Keys are never stored, only their SHA-256 digests (lowercase hex in the file). Every
// problem is one line naming the place and the value: "tenants[1] (acme): weight must be
// > 0, got -1". Unknown keys are rejected by name, so a misspelt limit is not silently
// unlimited.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "scheduler/sha256.h"  // Sha256Digest

namespace sluice::server {

// Each limit is optional: absent means unlimited.
struct TenantLimits {
  std::optional<int64_t> requests_per_minute;
  // Prompt + max_tokens (x n) reserved at admission; the unused part refunded at the end.
  std::optional<int64_t> tokens_per_minute;
  std::optional<int64_t> max_concurrent_requests;
  std::optional<int64_t> max_tokens_per_request;  // per choice, as max_tokens is
  std::optional<int64_t> max_prompt_tokens;       // per prompt
};

struct TenantSpec {
  std::string id;                                 // [a-z0-9_-]{1,64}, unique
  std::vector<scheduler::Sha256Digest> key_digests;  // one or more
  double weight = 1.0;                            // fair share weight, > 0
  int32_t priority = 0;                           // lower runs first
  std::vector<std::string> models{"*"};           // served model ids, or "*"
  std::string cache_namespace;                    // default: id
  TenantLimits limits;

  // True when `model` is in `models` or `models` holds "*".
  bool may_use(std::string_view model) const;
};

struct TenantsConfig {
  std::vector<TenantSpec> tenants;
  std::vector<scheduler::Sha256Digest> admin_digests;  // empty: the Admin service is refused
  // No key needed at all (no --tenants, no --api-key): every caller is the one tenant.
  bool open = false;
};

// Parses the YAML text of a tenants file. The error's message is one line (no file name:
// the caller prefixes it).
StatusOr<TenantsConfig> parse_tenants_yaml(std::string_view text);
// Reads and parses `path`; errors start with "tenants file PATH: ".
StatusOr<TenantsConfig> load_tenants_file(const std::string& path);

// The single tenant "default" of a daemon without a tenants file: open, or (with --api-key)
// reached by that one key. Models "*", no limits, no admin key.
TenantsConfig single_tenant_config(std::string_view api_key);

// Parses 64 lowercase hex characters; nullopt otherwise.
std::optional<scheduler::Sha256Digest> parse_hex_digest(std::string_view hex);

}  // namespace sluice::server
