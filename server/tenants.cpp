#include "server/tenants.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace sluice::server {

std::string_view reject_reason_name(RejectReason r) {
  return frontend::kTenantRejectionReasons[static_cast<size_t>(r)];
}

std::optional<std::string_view> bearer_token(std::optional<std::string_view> authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization || authorization->size() <= kBearer.size() ||
      authorization->substr(0, kBearer.size()) != kBearer) {
    return std::nullopt;
  }
  return authorization->substr(kBearer.size());
}

// ---- Tenant ----

std::shared_ptr<const TenantSpec> Tenant::spec() const {
  std::lock_guard<std::mutex> lock(mu_);
  return spec_;
}

void Tenant::count_rejection(RejectReason r) {
  rejections_[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  metrics_.rejections[static_cast<size_t>(r)]->inc();
}

void Tenant::count_tokens(int64_t prompt, int64_t cached, int64_t completion) {
  prompt_tokens_.fetch_add(prompt, std::memory_order_relaxed);
  cached_tokens_.fetch_add(cached, std::memory_order_relaxed);
  completion_tokens_.fetch_add(completion, std::memory_order_relaxed);
  metrics_.prompt_tokens->inc(static_cast<double>(prompt));
  metrics_.cached_tokens->inc(static_cast<double>(cached));
  metrics_.generation_tokens->inc(static_cast<double>(completion));
}

TenantUsage Tenant::usage() const {
  TenantUsage u;
  u.id = id_;
  u.requests = requests_.load(std::memory_order_relaxed);
  u.prompt_tokens = prompt_tokens_.load(std::memory_order_relaxed);
  u.cached_tokens = cached_tokens_.load(std::memory_order_relaxed);
  u.completion_tokens = completion_tokens_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kNumRejectReasons; ++i) u.rejections[i] = rejections_[i].load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  u.running = running_;
  u.waiting = static_cast<int32_t>(in_flight_ - running_);
  return u;
}

// ---- TenantLease ----

TenantLease::TenantLease(std::shared_ptr<Tenant> tenant, std::shared_ptr<const TenantSpec> spec,
                         int64_t reserved_tokens, MonotonicClock clock)
    : tenant_(std::move(tenant)), spec_(std::move(spec)), reserved_(reserved_tokens), clock_(std::move(clock)) {}

// A lease nobody released belongs to a request that never ran (e.g. refused after
// admission for a duplicate request id): its tokens all come back.
TenantLease::~TenantLease() { release(0); }

void TenantLease::mark_running() {
  if (released_.load() || running_.exchange(true)) return;
  std::lock_guard<std::mutex> lock(tenant_->mu_);
  ++tenant_->running_;
}

void TenantLease::release(int64_t used_tokens) {
  if (released_.exchange(true)) return;
  std::lock_guard<std::mutex> lock(tenant_->mu_);
  --tenant_->in_flight_;
  if (running_.load()) --tenant_->running_;
  if (tenant_->tokens_bucket_ && used_tokens < reserved_) {
    tenant_->tokens_bucket_->refund(reserved_ - used_tokens, clock_());
  }
}

// ---- Tenants ----

Tenants::Tenants(TenantsConfig config, std::string path, frontend::Registry& registry, MonotonicClock clock)
    : path_(std::move(path)), families_(frontend::register_tenant_metrics(registry)), clock_(std::move(clock)) {
  replace(std::move(config));
}

std::shared_ptr<const Tenants::State> Tenants::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

bool Tenants::open() const { return state()->config.open; }
bool Tenants::has_admin() const { return !state()->config.admin_digests.empty(); }
size_t Tenants::size() const { return state()->config.tenants.size(); }

std::shared_ptr<Tenant> Tenants::tenant_for_locked(const std::string& id) {
  auto it = known_.find(id);
  if (it != known_.end()) return it->second;
  auto t = std::make_shared<Tenant>(id, scheduler::TenantId(next_numeric_id_++), families_.for_tenant(id));
  known_.emplace(id, t);
  return t;
}

void Tenants::replace(TenantsConfig config) {
  auto next = std::make_shared<State>();
  const auto now = clock_();
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < config.tenants.size(); ++i) {
    const TenantSpec& spec = config.tenants[i];
    std::shared_ptr<Tenant> t = tenant_for_locked(spec.id);
    {
      std::lock_guard<std::mutex> tl(t->mu_);
      t->spec_ = std::make_shared<const TenantSpec>(spec);
      auto set_bucket = [&](std::optional<TokenBucket>& b, const std::optional<int64_t>& rate) {
        if (!rate) {
          b.reset();
        } else if (!b) {
          b.emplace(*rate, now);
        } else if (b->per_minute() != *rate) {
          b->set_rate(*rate, now);
        }
      };
      set_bucket(t->requests_bucket_, spec.limits.requests_per_minute);
      set_bucket(t->tokens_bucket_, spec.limits.tokens_per_minute);
    }
    for (const auto& d : spec.key_digests) next->digests.emplace_back(d, static_cast<int>(i));
    next->tenants.push_back(std::move(t));
  }
  for (const auto& d : config.admin_digests) next->digests.emplace_back(d, -1);
  next->config = std::move(config);
  state_ = std::move(next);
}

Status Tenants::reload() {
  if (path_.empty()) return Status::failed_precondition("no tenants file was given (--tenants)");
  auto cfg = load_tenants_file(path_);
  if (!cfg.is_ok()) return cfg.status();
  replace(std::move(cfg).value());
  return Status::ok();
}

std::optional<Caller> Tenants::authenticate(std::optional<std::string_view> key) const {
  const std::shared_ptr<const State> s = state();
  if (s->config.open) return Caller{s->tenants.front(), false};
  if (!key || key->empty()) return std::nullopt;
  const scheduler::Sha256Digest given = scheduler::sha256(*key);
  // Every digest is compared in full, without an early exit, so the time taken does not
  // depend on which digest (or how much of one) matched.
  int owner = -2;  // -2: none
  for (const auto& [digest, who] : s->digests) {
    uint8_t diff = 0;
    for (size_t i = 0; i < digest.size(); ++i) diff = static_cast<uint8_t>(diff | (digest[i] ^ given[i]));
    // mask is all ones when diff == 0 (a match), else zero.
    const int mask = -static_cast<int>((static_cast<unsigned>(diff) - 1u) >> 31);
    owner = (owner & ~mask) | (who & mask);
  }
  if (owner == -2) return std::nullopt;
  if (owner == -1) return Caller{nullptr, true};
  return Caller{s->tenants[static_cast<size_t>(owner)], false};
}

std::variant<std::shared_ptr<TenantLease>, Tenants::Rejection> Tenants::admit(
    const std::shared_ptr<Tenant>& tenant, int64_t reserve_tokens) {
  const auto now = clock_();
  Rejection rej{RejectReason::kRateLimit, 0, {}};
  std::shared_ptr<const TenantSpec> spec;
  {
    std::lock_guard<std::mutex> lock(tenant->mu_);
    spec = tenant->spec_;
    const TenantLimits& lim = spec->limits;
    int64_t request_wait = 0, token_wait = 0;
    if (tenant->requests_bucket_) request_wait = tenant->requests_bucket_->wait_seconds(1, now);
    if (tenant->tokens_bucket_) token_wait = tenant->tokens_bucket_->wait_seconds(reserve_tokens, now);
    if (lim.max_concurrent_requests && tenant->in_flight_ >= *lim.max_concurrent_requests) {
      rej = {RejectReason::kConcurrencyLimit, 1,
             fmt::format("Too many concurrent requests: tenant {} may have {} in flight; retry when "
                         "one ends", tenant->id(), *lim.max_concurrent_requests)};
    } else if (token_wait < 0) {
      rej = {RejectReason::kTokensLimit, -1,
             fmt::format("This request reserves {} tokens (prompt + max_tokens of every choice) but "
                         "tenant {} may use {} tokens per minute; lower max_tokens or shorten the prompt",
                         reserve_tokens, tenant->id(), *lim.tokens_per_minute)};
    } else if (request_wait > 0) {
      rej = {RejectReason::kRateLimit, std::max(request_wait, token_wait),
             fmt::format("Rate limit reached: tenant {} may make {} requests per minute; retry in {} s",
                         tenant->id(), *lim.requests_per_minute, std::max(request_wait, token_wait))};
    } else if (token_wait > 0) {
      rej = {RejectReason::kTokensLimit, token_wait,
             fmt::format("Token rate limit reached: tenant {} may use {} tokens per minute and this "
                         "request reserves {}; retry in {} s",
                         tenant->id(), *lim.tokens_per_minute, reserve_tokens, token_wait)};
    } else {
      if (tenant->requests_bucket_) tenant->requests_bucket_->try_take(1, now);
      if (tenant->tokens_bucket_) tenant->tokens_bucket_->try_take(reserve_tokens, now);
      ++tenant->in_flight_;
      rej.retry_after_seconds = 0;
    }
  }
  if (rej.retry_after_seconds != 0) {
    tenant->count_rejection(rej.reason);
    return rej;
  }
  tenant->requests_.fetch_add(1, std::memory_order_relaxed);
  tenant->metrics_.requests->inc();
  return std::make_shared<TenantLease>(tenant, std::move(spec), reserve_tokens, clock_);
}

std::vector<TenantUsage> Tenants::usage(std::string_view id) const {
  const std::shared_ptr<const State> s = state();
  std::vector<TenantUsage> out;
  for (const auto& t : s->tenants) {
    if (id.empty() || t->id() == id) out.push_back(t->usage());
  }
  return out;
}

}  // namespace sluice::server
