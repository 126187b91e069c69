#pragma once
// The tenants of a running `sluice serve`: authentication by API key, admission against each
// tenant's limits, usage since start, and the per-tenant metrics (INTERFACES.md, "Tenants
// file", "Auth matrix", "Metrics").
//
// The configuration is a TenantsConfig (tenants_file.h) swapped whole on a reload
// (SIGHUP, Admin.Reload): a request sees either the old or the new one, and a bad file
// changes nothing. A tenant's running state (buckets, in-flight count, usage, metric
// series) belongs to its id and survives reloads; a reload that changes a limit keeps the
// bucket's level (capped at the new capacity).
//
// Thread-safety: every method may be called from any thread.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"
#include "frontend/engine_metrics.h"
#include "frontend/metrics.h"
#include "scheduler/sequence.h"  // TenantId
#include "server/rate_limit.h"
#include "server/tenants_file.h"

namespace sluice::server {

enum class RejectReason : uint8_t {
  kRateLimit = 0,      // requests_per_minute
  kTokensLimit,        // tokens_per_minute
  kConcurrencyLimit,   // max_concurrent_requests
  kMaxTokens,          // max_tokens_per_request
  kPromptTooLong,      // max_prompt_tokens
  kModelForbidden,     // a model not in the tenant's list
};
inline constexpr size_t kNumRejectReasons = frontend::kTenantRejectionReasons.size();
// The metric label ("rate_limit", ...), as frontend::kTenantRejectionReasons names it.
std::string_view reject_reason_name(RejectReason r);

struct TenantUsage {
  std::string id;
  int64_t requests = 0;  // admitted
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t completion_tokens = 0;
  std::array<int64_t, kNumRejectReasons> rejections{};  // indexed by RejectReason
  // The server's view of the tenant's admitted requests: waiting until their first token,
  // then running until they end.
  int32_t running = 0;
  int32_t waiting = 0;
};

// One tenant's running state. Shared: requests hold it until they end, also across a
// reload that drops the tenant.
class Tenant {
 public:
  Tenant(std::string id, scheduler::TenantId numeric_id, frontend::TenantMetrics metrics)
      : id_(std::move(id)), numeric_id_(numeric_id), metrics_(metrics) {}

  const std::string& id() const { return id_; }
  scheduler::TenantId numeric_id() const { return numeric_id_; }  // stable for the process
  std::shared_ptr<const TenantSpec> spec() const;                 // the one in force
  const frontend::TenantMetrics& metrics() const { return metrics_; }

  // Counts a refusal (usage and sluice_tenant_rejections_total).
  void count_rejection(RejectReason r);
  // Counts a request's tokens when it ends (usage and the token counters).
  void count_tokens(int64_t prompt, int64_t cached, int64_t completion);
  TenantUsage usage() const;

 private:
  friend class Tenants;
  friend class TenantLease;

  const std::string id_;
  const scheduler::TenantId numeric_id_;
  const frontend::TenantMetrics metrics_;

  mutable std::mutex mu_;  // guards the fields below
  std::shared_ptr<const TenantSpec> spec_;
  std::optional<TokenBucket> requests_bucket_;  // with requests_per_minute
  std::optional<TokenBucket> tokens_bucket_;    // with tokens_per_minute
  int64_t in_flight_ = 0;
  int32_t running_ = 0;

  std::atomic<int64_t> requests_{0}, prompt_tokens_{0}, cached_tokens_{0}, completion_tokens_{0};
  std::array<std::atomic<int64_t>, kNumRejectReasons> rejections_{};
};

// An admitted request's hold on its tenant: one in-flight slot and `reserved` tokens of the
// tokens-per-minute bucket. release() gives the slot back and refunds what the request did
// not use; the destructor releases (refunding every reserved token: the request never ran)
// if nobody did. mark_running() and release() are called by the request's one consumer.
class TenantLease {
 public:
  TenantLease(std::shared_ptr<Tenant> tenant, std::shared_ptr<const TenantSpec> spec, int64_t reserved_tokens,
              MonotonicClock clock);
  ~TenantLease();
  TenantLease(const TenantLease&) = delete;
  TenantLease& operator=(const TenantLease&) = delete;

  Tenant& tenant() const { return *tenant_; }
  const TenantSpec& spec() const { return *spec_; }  // as admitted
  int64_t reserved_tokens() const { return reserved_; }
  // The request got its first token: it counts as running from now. Idempotent.
  void mark_running();
  // The request ended having used `used_tokens` (prompt + generated). Idempotent.
  void release(int64_t used_tokens);

 private:
  std::shared_ptr<Tenant> tenant_;
  std::shared_ptr<const TenantSpec> spec_;
  const int64_t reserved_;
  const MonotonicClock clock_;
  std::atomic<bool> running_{false};
  std::atomic<bool> released_{false};
};

// Who a request comes from.
struct Caller {
  std::shared_ptr<Tenant> tenant;  // null for the admin key
  bool admin = false;
};

// The KEY of "Bearer KEY" (case-sensitive scheme, one space); nullopt when absent or shaped
// otherwise.
std::optional<std::string_view> bearer_token(std::optional<std::string_view> authorization);

class Tenants {
 public:
  // `path`: the tenants file reload() re-reads (empty: none, reload() fails). Registers
  // the per-tenant metric families in `registry`, which must outlive this.
  Tenants(TenantsConfig config, std::string path, frontend::Registry& registry,
          MonotonicClock clock = steady_clock_source());

  // The caller behind a bearer key: a tenant, the admin, or nullopt (401) when the key is
  // missing or matches nothing. The key's SHA-256 is compared in constant time against
  // every digest. An open daemon (no keys configured) takes anyone as its one tenant.
  std::optional<Caller> authenticate(std::optional<std::string_view> key) const;

  bool open() const;       // no key needed
  bool has_admin() const;  // an admin key is configured
  bool from_file() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  size_t size() const;  // tenants in force

  // Re-reads the file; on an error (returned, one line) the tenants in force stay.
  Status reload();
  // Puts `config` in force.
  void replace(TenantsConfig config);

  struct Rejection {
    RejectReason reason;
    // Whole seconds until a retry can pass (>= 1); -1 when it never can (the request needs
    // more tokens than tokens_per_minute holds).
    int64_t retry_after_seconds = 1;
    std::string message;
  };
  // Admits a request that reserves `reserve_tokens` (prompt + max_tokens of every choice)
  // against `tenant`'s max_concurrent_requests, requests_per_minute and tokens_per_minute,
  // taking from every bucket or from none. A refusal is counted.
  std::variant<std::shared_ptr<TenantLease>, Rejection> admit(const std::shared_ptr<Tenant>& tenant,
                                                               int64_t reserve_tokens);

  // Usage of the tenants in force (`id` non-empty: that one; none when unknown), in file
  // order.
  std::vector<TenantUsage> usage(std::string_view id = {}) const;

 private:
  struct State {
    TenantsConfig config;
    std::vector<std::shared_ptr<Tenant>> tenants;  // [i] for config.tenants[i]
    // Every digest with its owner: a tenant index, or -1 for the admin key.
    std::vector<std::pair<scheduler::Sha256Digest, int>> digests;
  };
  std::shared_ptr<const State> state() const;
  std::shared_ptr<Tenant> tenant_for_locked(const std::string& id);

  const std::string path_;
  frontend::TenantMetricFamilies families_;
  MonotonicClock clock_;

  mutable std::mutex mu_;  // guards the fields below (the swap, not the tenants' state)
  std::shared_ptr<const State> state_;
  // Every tenant ever in force, by id, so that its running state survives reloads.
  std::map<std::string, std::shared_ptr<Tenant>, std::less<>> known_;
  uint32_t next_numeric_id_ = 1;
};

}  // namespace sluice::server
