// sluice-bench's flag values: base URLs, sweep lists, --goodput and --tenant.

#include "sluice_bench/bench_options.h"

#include <gtest/gtest.h>

#include <cmath>

namespace sluice::bench {
namespace {

TEST(BaseUrl, Forms) {
  StatusOr<Endpoint> e = parse_base_url("http://127.0.0.1:8000");
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, "8000");
  EXPECT_EQ(e->base_path, "");
  EXPECT_EQ(e->host_header(), "127.0.0.1:8000");
  e = parse_base_url("http://example.com/");
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->port, "80");
  EXPECT_EQ(e->base_path, "");
  e = parse_base_url("http://h:9/proxy/sluice/");
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->base_path, "/proxy/sluice");
  e = parse_base_url("http://[::1]:8080");
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, "8080");
  for (const char* bad : {"https://h:1", "h:80", "http://:80", "http://h:0", "http://h:99999",
                          "http://h:x", "http://h:8000/v1", "http://[::1"}) {
    EXPECT_FALSE(parse_base_url(bad).is_ok()) << bad;
  }
}

TEST(Lists, CountsAndRates) {
  StatusOr<std::vector<int64_t>> c = parse_count_list("1,4, 16", "--max-concurrency");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(*c, (std::vector<int64_t>{1, 4, 16}));
  EXPECT_FALSE(parse_count_list("1,0", "--max-concurrency").is_ok());
  EXPECT_FALSE(parse_count_list("1,,2", "--max-concurrency").is_ok());
  EXPECT_FALSE(parse_count_list("2.5", "--max-concurrency").is_ok());
  StatusOr<std::vector<double>> r = parse_rate_list("0.5,2,inf", "--request-rate");
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0], 0.5);
  EXPECT_TRUE(std::isinf((*r)[2]));
  EXPECT_FALSE(parse_rate_list("0", "--request-rate").is_ok());
  EXPECT_FALSE(parse_rate_list("-1", "--request-rate").is_ok());
  EXPECT_FALSE(parse_rate_list("fast", "--request-rate").is_ok());
}

TEST(Goodput, Slos) {
  StatusOr<GoodputSlo> g = parse_goodput({"ttft:200", "e2el:5000.5"});
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->ttft_ms, 200);
  EXPECT_FALSE(g->tpot_ms.has_value());
  EXPECT_EQ(g->e2el_ms, 5000.5);
  EXPECT_TRUE(g->any());
  EXPECT_FALSE(parse_goodput({})->any());
  EXPECT_FALSE(parse_goodput({"itl:5"}).is_ok());
  EXPECT_FALSE(parse_goodput({"ttft"}).is_ok());
  EXPECT_FALSE(parse_goodput({"ttft:0"}).is_ok());
  EXPECT_FALSE(parse_goodput({"tpot:inf"}).is_ok());
}

TEST(Tenant, KeyRateWeight) {
  StatusOr<TenantSpec> t = parse_tenant("sk-acme:2.5", 0);
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->api_key, "sk-acme");
  EXPECT_EQ(t->request_rate, 2.5);
  EXPECT_EQ(t->weight, 1.0);
  EXPECT_EQ(t->label, "tenant0");
  t = parse_tenant("sk-b:inf:3", 1);
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->api_key, "sk-b");
  EXPECT_TRUE(std::isinf(t->request_rate));
  EXPECT_EQ(t->weight, 3.0);
  t = parse_tenant("a:b:c:4", 2);  // a key with colons
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->api_key, "a:b:c");
  EXPECT_EQ(t->request_rate, 4);
  for (const char* bad : {"nokey", ":5", "k:0", "k:x", "k:1:0", "k:1:inf"}) {
    EXPECT_FALSE(parse_tenant(bad, 0).is_ok()) << bad;
  }
  EXPECT_EQ(key_hint("sk-secret-key"), "sk-s...");
  EXPECT_EQ(key_hint("abc"), "***");
}

}  // namespace
}  // namespace sluice::bench
