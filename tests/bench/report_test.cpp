// sluice-bench's report: every vLLM key in the JSON, "inf" rates, tenants and Jain's index,
// and the table's headline rows.

#include "sluice_bench/report.h"

#include <gtest/gtest.h>

#include <cmath>

namespace sluice::bench {
namespace {

RequestResult done(int tenant, double start, std::vector<double> times) {
  RequestResult r;
  r.success = true;
  r.tenant = tenant;
  r.start_s = start;
  r.chunk_times_s = std::move(times);
  r.chunk_tokens.assign(r.chunk_times_s.size(), 1);
  r.end_s = r.chunk_times_s.back();
  r.output_tokens = static_cast<int64_t>(r.chunk_times_s.size());
  r.prompt_tokens = 16;
  r.cached_tokens = 8;
  return r;
}

RunInfo info() {
  // NOTE: designated initializers, not assignments: GCC 12 gives a false -Wrestrict on
  // assigning short literals to these strings at -O3.
  return RunInfo{.date = {},
                 .base_url = {},
                 .endpoint = "completions",
                 .model_id = "m",
                 .dataset = "random",
                 .num_prompts = 2,
                 .request_rate = std::numeric_limits<double>::infinity(),
                 .max_concurrency = 4,
                 .input_len = 16,
                 .output_len = 3,
                 .goodput = {}};
}

TEST(Report, JsonHasVllmKeys) {
  const std::vector<RequestResult> rs = {done(-1, 0, {0.1, 0.2, 0.3}),
                                         done(-1, 0, {0.2, 0.3, 0.4})};
  RunInfo in = info();
  in.goodput.ttft_ms = 150;
  const RunReport rep = make_report(in, rs, 0.5, 0, {});
  const nlohmann::json j = to_json(rep);
  for (const char* key :
       {"completed", "failed", "duration", "request_throughput", "output_throughput",
        "total_token_throughput", "total_input_tokens", "total_output_tokens",
        "max_output_tokens_per_s", "request_goodput", "total_cached_tokens", "tenants"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  for (const char* metric : {"ttft", "tpot", "itl", "e2el"}) {
    for (const char* stat : {"mean", "median", "std", "p90", "p95", "p99"}) {
      EXPECT_TRUE(j.contains(std::string(stat) + "_" + metric + "_ms")) << stat << "_" << metric;
    }
  }
  EXPECT_EQ(j["completed"], 2);
  EXPECT_EQ(j["request_rate"], "inf");
  EXPECT_EQ(j["max_concurrency"], 4);
  EXPECT_EQ(j["total_cached_tokens"], 16);
  EXPECT_DOUBLE_EQ(j["request_goodput"].get<double>(), 2.0);  // both TTFTs <= 150 ms, over 0.5 s
  EXPECT_DOUBLE_EQ(j["mean_ttft_ms"].get<double>(), 150);
  EXPECT_TRUE(j["tenants"].empty());
  EXPECT_FALSE(j.contains("jain_fairness_index"));
  const std::string table = format_table(rep);
  EXPECT_NE(table.find("Successful requests:"), std::string::npos);
  EXPECT_NE(table.find("Mean TTFT (ms):"), std::string::npos);
  EXPECT_NE(table.find("Request goodput (req/s):"), std::string::npos);
}

TEST(Report, NoGoodputIsNullAndErrorsAreCounted) {
  RequestResult bad;
  bad.error = "HTTP 503: busy";
  std::vector<RequestResult> rs = {done(-1, 0, {0.1}), bad, bad};
  RunInfo in = info();
  in.request_rate = 4;
  in.max_concurrency = 0;
  const nlohmann::json j = to_json(make_report(in, rs, 1.0, 0, {}));
  EXPECT_TRUE(j["request_goodput"].is_null());
  EXPECT_TRUE(j["max_concurrency"].is_null());
  EXPECT_EQ(j["request_rate"], 4.0);
  EXPECT_EQ(j["failed"], 2);
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_EQ(j["errors"][0], "2 x HTTP 503: busy");
}

TEST(Report, TenantsAndJain) {
  // Tenant 0 gets 3 tokens, tenant 1 one, both within the window (until 0.35 s).
  const std::vector<RequestResult> rs = {done(0, 0, {0.1, 0.2, 0.3}), done(1, 0, {0.35})};
  TenantSpec a, b;
  a.api_key = "sk-aaaa";
  a.label = "tenant0";
  a.request_rate = 1;
  b.api_key = "sk-bbbb";
  b.label = "tenant1";
  b.request_rate = 1;
  b.weight = 2;
  const RunReport rep = make_report(info(), rs, 1.0, 0, {a, b});
  ASSERT_EQ(rep.tenants.size(), 2u);
  EXPECT_EQ(rep.tenants[0].service.window, 16 + 6);
  EXPECT_EQ(rep.tenants[1].service.window, 0);
  EXPECT_EQ(rep.tenants[1].service.total, 16 + 2);
  EXPECT_DOUBLE_EQ(rep.fairness_window_s, 0.3);  // tenant 0's last request ends first
  // Service by 0.3 s: tenant 0 has 22, tenant 1 none yet (its first chunk is at 0.35).
  EXPECT_DOUBLE_EQ(rep.jain_fairness_index, 0.5);
  const nlohmann::json j = to_json(rep);
  ASSERT_TRUE(j["tenants"].contains("tenant1"));
  EXPECT_EQ(j["tenants"]["tenant1"]["weight"], 2.0);
  EXPECT_EQ(j["tenants"]["tenant1"]["completed"], 1);
  EXPECT_EQ(j["tenants"]["tenant1"]["api_key_hint"], "sk-b...");
  EXPECT_TRUE(j.contains("jain_fairness_index"));
  EXPECT_NE(format_table(rep).find("Jain's fairness index:"), std::string::npos);
}

}  // namespace
}  // namespace sluice::bench
