// The tenants file (parsing and each rejection), key digests and authentication, token
// buckets and tenant limits on a fake clock (they fire at exactly the configured numbers),
// and reloads (a bad file keeps the tenants in force).

#include "server/tenants.h"

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>  // getpid

#include "server/rate_limit.h"
#include "server/tenants_file.h"

namespace sluice::server {
namespace {

using namespace std::chrono_literals;

std::string hex_of(std::string_view key) { return scheduler::to_hex(scheduler::sha256(key)); }

// A hand-driven clock for buckets and Tenants.
struct FakeClock {
  std::chrono::nanoseconds now{1'000'000'000};
  MonotonicClock source() {
    return [this] { return now; };
  }
};

std::string two_tenants_yaml() {
  return "admin_api_key_sha256: \"" + hex_of("admin-key") + "\"\n" +
         "tenants:\n"
         "  - id: acme\n"
         "    api_key_sha256: [\"" + hex_of("acme-1") + "\", \"" + hex_of("acme-2") + "\"]\n"
         "    weight: 2.5\n"
         "    priority: 1\n"
         "    models: [\"tiny\"]\n"
         "    cache_namespace: shared\n"
         "    limits:\n"
         "      requests_per_minute: 3\n"
         "      tokens_per_minute: 100\n"
         "      max_concurrent_requests: 2\n"
         "      max_tokens_per_request: 50\n"
         "      max_prompt_tokens: 40\n"
         "  - id: beta_2\n"
         "    api_key_sha256: \"" + hex_of("beta-key") + "\"\n";
}

TEST(TenantsFile, ParsesEveryFieldAndDefaults) {
  auto cfg = parse_tenants_yaml(two_tenants_yaml());
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().message();
  ASSERT_EQ(cfg->tenants.size(), 2u);
  EXPECT_FALSE(cfg->open);
  ASSERT_EQ(cfg->admin_digests.size(), 1u);
  EXPECT_EQ(cfg->admin_digests[0], scheduler::sha256("admin-key"));
  const TenantSpec& a = cfg->tenants[0];
  EXPECT_EQ(a.id, "acme");
  ASSERT_EQ(a.key_digests.size(), 2u);
  EXPECT_EQ(a.key_digests[1], scheduler::sha256("acme-2"));
  EXPECT_DOUBLE_EQ(a.weight, 2.5);
  EXPECT_EQ(a.priority, 1);
  EXPECT_EQ(a.cache_namespace, "shared");
  EXPECT_TRUE(a.may_use("tiny"));
  EXPECT_FALSE(a.may_use("other"));
  EXPECT_EQ(a.limits.requests_per_minute, 3);
  EXPECT_EQ(a.limits.tokens_per_minute, 100);
  EXPECT_EQ(a.limits.max_concurrent_requests, 2);
  EXPECT_EQ(a.limits.max_tokens_per_request, 50);
  EXPECT_EQ(a.limits.max_prompt_tokens, 40);
  const TenantSpec& b = cfg->tenants[1];
  EXPECT_EQ(b.id, "beta_2");
  EXPECT_DOUBLE_EQ(b.weight, 1.0);
  EXPECT_EQ(b.priority, 0);
  EXPECT_EQ(b.cache_namespace, "beta_2");  // default = id
  EXPECT_TRUE(b.may_use("anything"));       // default models: ["*"]
  EXPECT_FALSE(b.limits.requests_per_minute.has_value());
  EXPECT_FALSE(b.limits.max_prompt_tokens.has_value());
}

struct BadCase {
  const char* name;
  std::string yaml;
  std::string expect;  // a piece of the one-line message
};

TEST(TenantsFile, RejectsEachProblemByNameOnOneLine) {
  const std::string d1 = hex_of("k1"), d2 = hex_of("k2");
  auto tenant = [&](const std::string& extra, const std::string& id = "t1", const std::string& digest = "") {
    return "tenants:\n  - id: " + id + "\n    api_key_sha256: \"" + (digest.empty() ? d1 : digest) + "\"\n" + extra;
  };
  const std::vector<BadCase> cases = {
      {"empty file", "", "empty"},
      {"unknown top key", "tenant:\n  - id: a\n", "unknown key 'tenant'"},
      {"no tenants", "admin_api_key_sha256: \"" + d1 + "\"\n", "'tenants' must be a list"},
      {"empty tenants", "tenants: []\n", "'tenants' must be a list"},
      {"tenant not a map", "tenants:\n  - acme\n", "tenants[0] must be a mapping"},
      {"missing id", "tenants:\n  - api_key_sha256: \"" + d1 + "\"\n", "'id' is required"},
      {"bad id chars", tenant("", "Acme"), "must match [a-z0-9_-]{1,64}"},
      {"id too long", tenant("", std::string(65, 'a')), "must match"},
      {"duplicate id", tenant("") + "  - id: t1\n    api_key_sha256: \"" + d2 + "\"\n", "id 't1' is used twice"},
      {"unknown tenant key", tenant("    wieght: 2\n"), "unknown key 'wieght'"},
      {"missing digest", "tenants:\n  - id: a\n", "'api_key_sha256' is required"},
      {"short digest", tenant("", "t1", "abc123"), "is not a SHA-256 digest"},
      {"uppercase digest", tenant("", "t1", std::string(64, 'A')), "is not a SHA-256 digest"},
      {"empty digest list", "tenants:\n  - id: a\n    api_key_sha256: []\n", "must not be empty"},
      {"digest shared by tenants",
       tenant("") + "  - id: t2\n    api_key_sha256: \"" + d1 + "\"\n", "is also used by tenant t1"},
      {"admin digest reused", "admin_api_key_sha256: \"" + d1 + "\"\n" + tenant(""),
       "is also used by admin_api_key_sha256"},
      {"bad admin digest", "admin_api_key_sha256: nope\n" + tenant(""), "admin_api_key_sha256: 'nope'"},
      {"zero weight", tenant("    weight: 0\n"), "weight must be > 0, got 0"},
      {"negative weight", tenant("    weight: -1.5\n"), "weight must be > 0"},
      {"text weight", tenant("    weight: heavy\n"), "weight must be a finite number"},
      {"float priority", tenant("    priority: 1.5\n"), "priority must be an integer"},
      {"huge priority", tenant("    priority: 99999999999\n"), "out of the int32 range"},
      {"models not strings", tenant("    models: {a: 1}\n"), "models must be a string or a list"},
      {"empty model id", tenant("    models: [\"\"]\n"), "must not be empty"},
      {"empty namespace", tenant("    cache_namespace: \"\"\n"), "cache_namespace must not be empty"},
      {"unknown limit", tenant("    limits:\n      request_per_minute: 5\n"), "unknown key 'request_per_minute'"},
      {"zero limit", tenant("    limits:\n      requests_per_minute: 0\n"), "requests_per_minute must be >= 1"},
      {"text limit", tenant("    limits:\n      tokens_per_minute: lots\n"), "tokens_per_minute must be an integer"},
      {"float limit", tenant("    limits:\n      max_prompt_tokens: 1.5\n"), "max_prompt_tokens must be an integer"},
      {"limits not a map", tenant("    limits: 5\n"), "limits must be a mapping"},
      {"duplicate key", tenant("    weight: 1\n    weight: 2\n"), "given twice"},
      {"yaml syntax", "tenants: [\n", "YAML error at line"},
  };
  for (const BadCase& c : cases) {
    auto cfg = parse_tenants_yaml(c.yaml);
    ASSERT_FALSE(cfg.is_ok()) << c.name;
    const std::string& m = cfg.status().message();
    EXPECT_NE(m.find(c.expect), std::string::npos) << c.name << ": " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << c.name << ": not one line: " << m;
  }
}

TEST(TenantsFile, LoadNamesTheFile) {
  auto missing = load_tenants_file("/nonexistent/tenants.yaml");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("tenants file /nonexistent/tenants.yaml"), std::string::npos);
}

TEST(Digests, ParseHex) {
  const std::string hex = hex_of("secret");
  auto d = parse_hex_digest(hex);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, scheduler::sha256("secret"));
  EXPECT_FALSE(parse_hex_digest(hex.substr(1)).has_value());
  EXPECT_FALSE(parse_hex_digest(hex + "0").has_value());
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper != hex) {
    EXPECT_FALSE(parse_hex_digest(upper).has_value());
  }
  EXPECT_FALSE(parse_hex_digest(std::string(63, '0') + "g").has_value());
  // A known vector: SHA-256 of the empty string.
  EXPECT_EQ(hex_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Auth, BearerToken) {
  EXPECT_EQ(bearer_token(std::string_view("Bearer abc")), "abc");
  EXPECT_FALSE(bearer_token(std::nullopt).has_value());
  EXPECT_FALSE(bearer_token(std::string_view("Bearer ")).has_value());
  EXPECT_FALSE(bearer_token(std::string_view("Basic abc")).has_value());
  EXPECT_FALSE(bearer_token(std::string_view("abc")).has_value());
}

TEST(Auth, KeysNameTheirTenantOrTheAdmin) {
  frontend::Registry registry;
  Tenants tenants(parse_tenants_yaml(two_tenants_yaml()).value(), "", registry);
  auto a1 = tenants.authenticate(std::string_view("acme-1"));
  auto a2 = tenants.authenticate(std::string_view("acme-2"));
  auto b = tenants.authenticate(std::string_view("beta-key"));
  auto admin = tenants.authenticate(std::string_view("admin-key"));
  ASSERT_TRUE(a1 && a2 && b && admin);
  EXPECT_EQ(a1->tenant->id(), "acme");
  EXPECT_EQ(a2->tenant.get(), a1->tenant.get());
  EXPECT_FALSE(a1->admin);
  EXPECT_EQ(b->tenant->id(), "beta_2");
  EXPECT_NE(a1->tenant->numeric_id(), b->tenant->numeric_id());
  EXPECT_TRUE(admin->admin);
  EXPECT_EQ(admin->tenant, nullptr);
  EXPECT_FALSE(tenants.authenticate(std::string_view("acme-3")).has_value());
  EXPECT_FALSE(tenants.authenticate(std::string_view("")).has_value());
  EXPECT_FALSE(tenants.authenticate(std::nullopt).has_value());
  // The digest itself is not a key.
  EXPECT_FALSE(tenants.authenticate(std::string_view(hex_of("acme-1"))).has_value());
  EXPECT_TRUE(tenants.has_admin());
  EXPECT_FALSE(tenants.open());
}

TEST(Auth, OpenAndSingleKeyDaemons) {
  frontend::Registry registry;
  Tenants open(single_tenant_config(""), "", registry);
  EXPECT_TRUE(open.open());
  EXPECT_FALSE(open.has_admin());
  auto anyone = open.authenticate(std::nullopt);
  ASSERT_TRUE(anyone.has_value());
  EXPECT_EQ(anyone->tenant->id(), "default");

  Tenants keyed(single_tenant_config("sk-1"), "", registry);
  EXPECT_FALSE(keyed.open());
  EXPECT_FALSE(keyed.has_admin());
  EXPECT_TRUE(keyed.authenticate(std::string_view("sk-1")).has_value());
  EXPECT_FALSE(keyed.authenticate(std::string_view("sk-2")).has_value());
  EXPECT_FALSE(keyed.authenticate(std::nullopt).has_value());
}

TEST(TokenBucket, FiresAtExactlyTheRateAndTellsTheWait) {
  FakeClock clock;
  TokenBucket b(5, clock.now);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.try_take(1, clock.now), 0) << i;
  EXPECT_EQ(b.try_take(1, clock.now), 12);  // 5 a minute: one every 12 s
  clock.now += 11s;
  EXPECT_EQ(b.try_take(1, clock.now), 1);
  clock.now += 1s;
  EXPECT_EQ(b.try_take(1, clock.now), 0);
  EXPECT_EQ(b.try_take(1, clock.now), 12);
  // A full minute refills the whole burst, no more.
  clock.now += 10min;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.try_take(1, clock.now), 0) << i;
  EXPECT_GT(b.try_take(1, clock.now), 0);
  // More than the capacity never fits.
  EXPECT_EQ(b.try_take(6, clock.now), -1);
}

TEST(TokenBucket, RefundsAndRateChanges) {
  FakeClock clock;
  TokenBucket b(100, clock.now);
  EXPECT_EQ(b.try_take(80, clock.now), 0);
  EXPECT_EQ(b.try_take(30, clock.now), 6);  // 10 missing at 100/min: 6 s
  b.refund(50, clock.now);
  EXPECT_EQ(b.try_take(30, clock.now), 0);
  EXPECT_DOUBLE_EQ(b.level(clock.now), 40.0);
  b.refund(1000, clock.now);
  EXPECT_DOUBLE_EQ(b.level(clock.now), 100.0);  // capped
  b.set_rate(10, clock.now);
  EXPECT_DOUBLE_EQ(b.level(clock.now), 10.0);
  EXPECT_EQ(b.try_take(11, clock.now), -1);
}

class TenantLimitsTest : public ::testing::Test {
 protected:
  TenantLimitsTest() : tenants(parse_tenants_yaml(two_tenants_yaml()).value(), "", registry, clock.source()) {}
  std::shared_ptr<Tenant> acme() { return tenants.authenticate(std::string_view("acme-1"))->tenant; }

  FakeClock clock;
  frontend::Registry registry;
  Tenants tenants;
};

TEST_F(TenantLimitsTest, RequestsPerMinuteFiresAtTheConfiguredNumber) {
  auto t = acme();
  std::vector<std::shared_ptr<TenantLease>> held;
  for (int i = 0; i < 3; ++i) {
    auto r = tenants.admit(t, 1);
    ASSERT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(r)) << i;
    std::get<std::shared_ptr<TenantLease>>(r)->release(1);
  }
  auto r = tenants.admit(t, 1);
  ASSERT_TRUE(std::holds_alternative<Tenants::Rejection>(r));
  EXPECT_EQ(std::get<Tenants::Rejection>(r).reason, RejectReason::kRateLimit);
  EXPECT_EQ(std::get<Tenants::Rejection>(r).retry_after_seconds, 20);  // 3 a minute
  clock.now += 20s;
  EXPECT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(tenants.admit(t, 1)));
  const TenantUsage u = tenants.usage("acme").at(0);
  EXPECT_EQ(u.requests, 4);
  EXPECT_EQ(u.rejections[static_cast<size_t>(RejectReason::kRateLimit)], 1);
  EXPECT_EQ(t->metrics().rejections[0]->value(), 1.0);
  EXPECT_EQ(t->metrics().requests->value(), 4.0);
}

TEST_F(TenantLimitsTest, TokensPerMinuteReservesAndRefunds) {
  auto t = acme();
  auto first = tenants.admit(t, 60);
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(first));
  auto second = tenants.admit(t, 41);  // 60 + 41 > 100
  ASSERT_TRUE(std::holds_alternative<Tenants::Rejection>(second));
  EXPECT_EQ(std::get<Tenants::Rejection>(second).reason, RejectReason::kTokensLimit);
  EXPECT_EQ(std::get<Tenants::Rejection>(second).retry_after_seconds, 1);  // 1 token at 100/min: 0.6 s
  // The first used 20 of its 60: 40 come back, so 41 fits now (40 + 40 left = 80).
  std::get<std::shared_ptr<TenantLease>>(first)->release(20);
  EXPECT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(tenants.admit(t, 41)));
  // More than a minute's tokens never fit: no retry helps.
  auto huge = tenants.admit(t, 101);
  ASSERT_TRUE(std::holds_alternative<Tenants::Rejection>(huge));
  EXPECT_EQ(std::get<Tenants::Rejection>(huge).retry_after_seconds, -1);
}

TEST_F(TenantLimitsTest, AnUnreleasedLeaseRefundsAllItsTokens) {
  auto t = acme();
  {
    auto never_ran = tenants.admit(t, 100);  // dropped without release(): it never ran
    ASSERT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(never_ran));
    EXPECT_TRUE(std::holds_alternative<Tenants::Rejection>(tenants.admit(t, 1)));
  }
  EXPECT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(tenants.admit(t, 100)));
}

TEST_F(TenantLimitsTest, ConcurrencyFiresAtTheConfiguredNumber) {
  auto t = acme();
  auto a = tenants.admit(t, 1);
  auto b = tenants.admit(t, 1);
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(a));
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(b));
  EXPECT_EQ(tenants.usage("acme")[0].waiting, 2);
  std::get<std::shared_ptr<TenantLease>>(a)->mark_running();
  EXPECT_EQ(tenants.usage("acme")[0].running, 1);
  EXPECT_EQ(tenants.usage("acme")[0].waiting, 1);
  auto c = tenants.admit(t, 1);
  ASSERT_TRUE(std::holds_alternative<Tenants::Rejection>(c));
  EXPECT_EQ(std::get<Tenants::Rejection>(c).reason, RejectReason::kConcurrencyLimit);
  std::get<std::shared_ptr<TenantLease>>(a).reset();  // the destructor releases too
  EXPECT_EQ(tenants.usage("acme")[0].running, 0);
  EXPECT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(tenants.admit(t, 1)));
}

TEST_F(TenantLimitsTest, UnlimitedTenantIsNeverRefused) {
  auto b = tenants.authenticate(std::string_view("beta-key"))->tenant;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(tenants.admit(b, 1'000'000))) << i;
  }
}

std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("sluice_tenants_test_" + std::to_string(::getpid()) + "_" + name);
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

TEST(TenantsReload, BadFileKeepsTheOldTenantsAndGoodFileReplaces) {
  const auto path = temp_file("reload.yaml");
  write_file(path, two_tenants_yaml());
  FakeClock clock;
  frontend::Registry registry;
  Tenants tenants(load_tenants_file(path.string()).value(), path.string(), registry, clock.source());
  auto acme = tenants.authenticate(std::string_view("acme-1"))->tenant;
  // Spend acme's requests: a reload keeps the bucket's level.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(std::holds_alternative<std::shared_ptr<TenantLease>>(tenants.admit(acme, 1)));

  write_file(path, "tenants:\n  - id: acme\n    api_key_sha256: \"" + hex_of("new") + "\"\n    bogus: 1\n");
  const Status bad = tenants.reload();
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.message().find("unknown key 'bogus'"), std::string::npos) << bad.message();
  EXPECT_EQ(tenants.size(), 2u);
  EXPECT_TRUE(tenants.authenticate(std::string_view("acme-1")).has_value());
  EXPECT_FALSE(tenants.authenticate(std::string_view("new")).has_value());

  write_file(path, "tenants:\n  - id: acme\n    api_key_sha256: \"" + hex_of("new") +
                       "\"\n    limits:\n      requests_per_minute: 3\n");
  ASSERT_TRUE(tenants.reload().is_ok());
  EXPECT_EQ(tenants.size(), 1u);
  EXPECT_FALSE(tenants.authenticate(std::string_view("acme-1")).has_value());
  EXPECT_FALSE(tenants.authenticate(std::string_view("beta-key")).has_value());
  EXPECT_FALSE(tenants.has_admin());
  auto again = tenants.authenticate(std::string_view("new"));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->tenant.get(), acme.get());  // the same running state
  EXPECT_TRUE(std::holds_alternative<Tenants::Rejection>(tenants.admit(acme, 1)));
  EXPECT_EQ(tenants.usage()[0].requests, 3);

  std::filesystem::remove(path);
  EXPECT_FALSE(tenants.reload().is_ok());  // gone: still the same tenants
  EXPECT_TRUE(tenants.authenticate(std::string_view("new")).has_value());
}

TEST(TenantMetrics, SeriesCarryTheTenantLabelOnly) {
  frontend::Registry registry;
  Tenants tenants(parse_tenants_yaml(two_tenants_yaml()).value(), "", registry);
  auto t = tenants.authenticate(std::string_view("acme-1"))->tenant;
  t->count_tokens(10, 4, 7);
  t->count_rejection(RejectReason::kModelForbidden);
  const std::string text = registry.render();
  EXPECT_NE(text.find("sluice_tenant_prompt_tokens_total{tenant=\"acme\"} 10"), std::string::npos) << text;
  EXPECT_NE(text.find("sluice_tenant_cached_tokens_total{tenant=\"acme\"} 4"), std::string::npos);
  EXPECT_NE(text.find("sluice_tenant_generation_tokens_total{tenant=\"acme\"} 7"), std::string::npos);
  EXPECT_NE(text.find("sluice_tenant_rejections_total{tenant=\"acme\",reason=\"model_forbidden\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_tenant_rejections_total{tenant=\"beta_2\",reason=\"rate_limit\"} 0"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_tenant_time_to_first_token_seconds_bucket{tenant=\"beta_2\",le=\"+Inf\"} 0"),
            std::string::npos);
}

}  // namespace
}  // namespace sluice::server
