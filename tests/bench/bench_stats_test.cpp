// sluice-bench's statistics against hand-computed values (numpy's percentile and std
// conventions, vLLM's TPOT/ITL/goodput/peak definitions) and Jain's index.

#include "sluice_bench/bench_stats.h"

#include <gtest/gtest.h>

#include <vector>

namespace sluice::bench {
namespace {

// A completed request: sent at `start`, content chunks at `times` (one token each unless
// `tokens` says otherwise), ending at the last chunk.
RequestResult request(double start, std::vector<double> times, std::vector<int64_t> tokens = {}) {
  RequestResult r;
  r.success = true;
  r.start_s = start;
  r.chunk_times_s = std::move(times);
  r.chunk_tokens =
      tokens.empty() ? std::vector<int64_t>(r.chunk_times_s.size(), 1) : std::move(tokens);
  r.end_s = r.chunk_times_s.back();
  for (int64_t t : r.chunk_tokens) r.output_tokens += t;
  r.prompt_tokens = 10;
  return r;
}

TEST(BenchStats, PercentileInterpolatesLikeNumpy) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_NEAR(percentile(v, 90), 3.7, 1e-12);
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4);
  const std::vector<double> ten = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_NEAR(percentile(ten, 99), 9.91, 1e-12);
  EXPECT_NEAR(percentile(ten, 95), 9.55, 1e-12);
  EXPECT_DOUBLE_EQ(percentile({7.0}, 99), 7);
}

TEST(BenchStats, SummarizeUsesPopulationStd) {
  const Distribution d = summarize({4, 1, 3, 2});  // order does not matter
  EXPECT_DOUBLE_EQ(d.mean, 2.5);
  EXPECT_DOUBLE_EQ(d.median, 2.5);
  EXPECT_NEAR(d.std, 1.118033988749895, 1e-12);
  EXPECT_NEAR(d.p99, 3.97, 1e-12);
  const Distribution empty = summarize({});
  EXPECT_EQ(empty.mean, 0);
  EXPECT_EQ(empty.p99, 0);
}

TEST(BenchStats, TtftTpotItlE2el) {
  // Sent at 1.0, chunks at 1.1, 1.2, 1.4: TTFT 100 ms, E2EL 400 ms, TPOT 300/2 = 150 ms,
  // ITL 100 and 200 ms.
  const std::vector<RequestResult> rs = {request(1.0, {1.1, 1.2, 1.4})};
  EXPECT_NEAR(tpot_s(rs[0]), 0.15, 1e-12);
  const Metrics m = compute_metrics(rs, 2.0, {});
  EXPECT_EQ(m.completed, 1);
  EXPECT_EQ(m.failed, 0);
  EXPECT_NEAR(m.ttft_ms.mean, 100, 1e-9);
  EXPECT_NEAR(m.e2el_ms.mean, 400, 1e-9);
  EXPECT_NEAR(m.tpot_ms.mean, 150, 1e-9);
  EXPECT_NEAR(m.itl_ms.mean, 150, 1e-9);
  EXPECT_NEAR(m.itl_ms.median, 150, 1e-9);
  EXPECT_NEAR(m.itl_ms.p99, 199, 1e-9);
  EXPECT_DOUBLE_EQ(m.request_throughput, 0.5);
  EXPECT_DOUBLE_EQ(m.output_throughput, 1.5);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 6.5);
  EXPECT_FALSE(m.request_goodput.has_value());
}

TEST(BenchStats, TpotUsesServerTokenCountAndSkipsSingleTokenRequests) {
  RequestResult multi = request(0, {0.2, 1.0}, {1, 4});  // 5 tokens in two chunks
  EXPECT_EQ(multi.output_tokens, 5);
  EXPECT_NEAR(tpot_s(multi), 0.8 / 4, 1e-12);
  RequestResult one = request(0, {0.5});
  EXPECT_EQ(tpot_s(one), 0);
  const Metrics m = compute_metrics(std::vector<RequestResult>{multi, one}, 1.0, {});
  EXPECT_NEAR(m.tpot_ms.mean, 200, 1e-9);  // only the multi-token request has a TPOT
  EXPECT_NEAR(m.ttft_ms.mean, 350, 1e-9);
}

TEST(BenchStats, FailedRequestsCountButHaveNoLatency) {
  RequestResult bad;
  bad.error = "HTTP 500: boom";
  bad.start_s = 0;
  bad.end_s = 9;
  bad.output_tokens = 100;
  const Metrics m =
      compute_metrics(std::vector<RequestResult>{request(0, {0.1, 0.2}), bad}, 1.0, {});
  EXPECT_EQ(m.completed, 1);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_output_tokens, 2);
  EXPECT_NEAR(m.e2el_ms.mean, 200, 1e-9);
}

TEST(BenchStats, GoodputMeetsEverySlo) {
  const std::vector<RequestResult> rs = {
      request(0, {0.1, 0.2, 0.3}),  // TTFT 100, TPOT 100, E2EL 300
      request(0, {0.3, 0.4, 0.5}),  // TTFT 300
      request(0, {0.1, 0.5, 0.9}),  // TPOT 400
      request(0, {0.05}),           // one token: TPOT counts as 0
  };
  GoodputSlo slo;
  slo.ttft_ms = 200;
  slo.tpot_ms = 150;
  Metrics m = compute_metrics(rs, 2.0, slo);
  ASSERT_TRUE(m.request_goodput.has_value());
  EXPECT_DOUBLE_EQ(*m.request_goodput, 1.0);  // requests 0 and 3, over 2 s
  slo = {};
  slo.e2el_ms = 400;
  m = compute_metrics(rs, 1.0, slo);
  EXPECT_DOUBLE_EQ(*m.request_goodput, 2.0);  // requests 0 (300 ms) and 3 (50 ms), over 1 s
  slo.e2el_ms = 600;
  m = compute_metrics(rs, 1.0, slo);
  EXPECT_DOUBLE_EQ(*m.request_goodput, 3.0);
}

TEST(BenchStats, PeakOutputTokensPerSecondBuckets) {
  // Buckets from the earliest start (0.2): [0.2, 1.2) holds 1 + 3 + 2, [1.2, 2.2) holds 1.
  const std::vector<RequestResult> rs = {request(0.2, {0.5, 0.9}, {1, 3}),
                                         request(0.4, {1.1, 1.3}, {2, 1})};
  EXPECT_DOUBLE_EQ(peak_output_tokens_per_s(rs), 6);
  EXPECT_DOUBLE_EQ(peak_output_tokens_per_s({}), 0);
}

TEST(BenchStats, MaxConcurrentRequests) {
  const std::vector<RequestResult> rs = {request(0, {1.0}), request(0.5, {2.0}),
                                         request(1.0, {1.5}), request(3, {4})};
  // At 1.0 the first ends as the third starts: the end is counted first.
  EXPECT_EQ(compute_metrics(rs, 4, {}).max_concurrent_requests, 2);
}

TEST(BenchStats, JainIndex) {
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{5, 5, 5}), 1.0);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{1, 0}), 0.5);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{3, 1}), 0.8);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{1, 0, 0, 0}), 0.25);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{}), 1.0);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{0, 0}), 1.0);
}

TEST(BenchStats, TenantServiceInAndOutOfTheWindow) {
  RequestResult a = request(0, {0.5, 1.0, 3.0});  // tenant 0: 10 prompt + 3 output
  a.tenant = 0;
  RequestResult b = request(0, {0.2, 0.4});  // tenant 1: 10 prompt + 2 output, ends at 0.4
  b.tenant = 1;
  RequestResult c = request(1.5, {2.5});  // tenant 1, ends at 2.5
  c.tenant = 1;
  RequestResult failed = request(0, {0.1});
  failed.tenant = 1;
  failed.success = false;
  const std::vector<RequestResult> rs = {a, b, c, failed};
  EXPECT_DOUBLE_EQ(fairness_window_end_s(rs, 2), 2.5);  // min(3.0, 2.5)
  const TenantService s0 = tenant_service(rs, 0, 2.5);
  EXPECT_EQ(s0.total, 10 + 2 * 3);
  EXPECT_EQ(s0.window, 10 + 2 * 2);  // the chunk at 3.0 is after the window
  const TenantService s1 = tenant_service(rs, 1, 2.5);
  EXPECT_EQ(s1.total, (10 + 2 * 2) + (10 + 2 * 1));
  EXPECT_EQ(s1.window, s1.total);
  EXPECT_EQ(results_of(rs, 1).size(), 3u);
  EXPECT_DOUBLE_EQ(fairness_window_end_s(rs, 0), 0);
}

}  // namespace
}  // namespace sluice::bench
