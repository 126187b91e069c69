// The metrics registry and Prometheus text writer: exact text for a small registry,
// escaping and number formatting, bucket edges, concurrent updates, registration rules,
// the vLLM engine families, and `promtool check metrics` on a registry with every kind.

#include "frontend/metrics.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "frontend/engine_metrics.h"

namespace sluice::frontend {
namespace {

TEST(MetricsTest, ExactTextForSmallRegistry) {
  Registry r;
  r.counter("sluice_requests_total", "Requests received.", {"route"}).with({"/v1/chat"}).inc(3);
  r.gauge("sluice_queue_depth", "Queued \\ requests.\nSecond line.").with({}).set(2.5);
  const double bounds[] = {0.125, 1.0};
  auto& h =
      r.histogram("sluice_latency_seconds", "Latency.", {"tenant"}, bounds).with({"a\"b\\c\nd"});
  h.observe(0.125);  // le is inclusive
  h.observe(0.5);
  h.observe(7.0);
  const std::string want =
      "# HELP sluice_requests_total Requests received.\n"
      "# TYPE sluice_requests_total counter\n"
      "sluice_requests_total{route=\"/v1/chat\"} 3\n"
      "# HELP sluice_queue_depth Queued \\\\ requests.\\nSecond line.\n"
      "# TYPE sluice_queue_depth gauge\n"
      "sluice_queue_depth 2.5\n"
      "# HELP sluice_latency_seconds Latency.\n"
      "# TYPE sluice_latency_seconds histogram\n"
      "sluice_latency_seconds_bucket{tenant=\"a\\\"b\\\\c\\nd\",le=\"0.125\"} 1\n"
      "sluice_latency_seconds_bucket{tenant=\"a\\\"b\\\\c\\nd\",le=\"1\"} 2\n"
      "sluice_latency_seconds_bucket{tenant=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 3\n"
      "sluice_latency_seconds_sum{tenant=\"a\\\"b\\\\c\\nd\"} 7.625\n"
      "sluice_latency_seconds_count{tenant=\"a\\\"b\\\\c\\nd\"} 3\n";
  EXPECT_EQ(r.render(), want);
}

TEST(MetricsTest, ChildrenRenderSortedByLabelValues) {
  Registry r;
  auto& f = r.counter("sluice_x_total", "x", {"a", "b"});
  f.with({"z", "1"}).inc();
  f.with({"m", "2"}).inc(2);
  f.with({"m", "10"}).inc(0.5);
  EXPECT_EQ(&f.with({"z", "1"}), &f.with({"z", "1"}));  // stable reference
  EXPECT_EQ(r.render(),
            "# HELP sluice_x_total x\n# TYPE sluice_x_total counter\n"
            "sluice_x_total{a=\"m\",b=\"10\"} 0.5\n"
            "sluice_x_total{a=\"m\",b=\"2\"} 2\n"
            "sluice_x_total{a=\"z\",b=\"1\"} 1\n");
}

TEST(MetricsTest, ValueFormatting) {
  auto fmt = [](double v) {
    std::string s;
    append_metric_value(v, &s);
    return s;
  };
  EXPECT_EQ(fmt(0), "0");
  EXPECT_EQ(fmt(1), "1");
  EXPECT_EQ(fmt(-2.5), "-2.5");
  EXPECT_EQ(fmt(0.001), "0.001");
  EXPECT_EQ(fmt(0.0005), "0.0005");
  EXPECT_EQ(fmt(0.0001), "0.0001");
  EXPECT_EQ(fmt(-0.00002), "-2e-05");
  EXPECT_EQ(fmt(1e20), "100000000000000000000");
  EXPECT_EQ(fmt(1e-5), "1e-05");
  EXPECT_EQ(fmt(1e21), "1e+21");
  EXPECT_EQ(fmt(123456789), "123456789");
  EXPECT_EQ(fmt(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(fmt(0.1 + 0.2), "0.30000000000000004");  // round-trips exactly
  EXPECT_EQ(fmt(INFINITY), "+Inf");
  EXPECT_EQ(fmt(-INFINITY), "-Inf");
  EXPECT_EQ(fmt(NAN), "NaN");
}

TEST(MetricsTest, InvalidUtf8LabelValueIsRepaired) {
  Registry r;
  auto& f = r.gauge("sluice_g", "g", {"model"});
  f.with({"bad\xFF"}).set(1);
  EXPECT_EQ(&f.with({"bad\xFF"}), &f.with({"bad\xEF\xBF\xBD"}));
  EXPECT_NE(r.render().find("sluice_g{model=\"bad\xEF\xBF\xBD\"} 1\n"), std::string::npos);
}

TEST(MetricsTest, HistogramBuckets) {
  const double bounds[] = {1, 2, 4, INFINITY};  // a trailing +Inf is implied anyway
  Histogram h(bounds);
  EXPECT_EQ(h.bounds().size(), 3u);
  for (double v : {-1.0, 1.0, 1.5, 2.0, 3.0, 4.0, 4.5, double{INFINITY}, double{NAN}}) h.observe(v);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 4, 6, 8}));
  EXPECT_EQ(s.count, 8u);  // NaN ignored
  EXPECT_TRUE(std::isinf(s.sum));
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  Registry r;
  auto& c = r.counter("sluice_c_total", "c").with({});
  auto& g = r.gauge("sluice_g", "g").with({});
  const double bounds[] = {0.5, 1.5, 2.5};
  auto& hf = r.histogram("sluice_h_seconds", "h", {"k"}, bounds);
  constexpr int kThreads = 12;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Resolving label sets concurrently is safe too.
      Histogram& h = hf.with({t % 2 == 0 ? "even" : "odd"});
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        g.inc(2);
        g.dec();
        h.observe(static_cast<double>(i % 3));
      }
    });
  }
  std::thread scraper([&] {
    for (int i = 0; i < 50; ++i) {
      const std::string text = r.render();
      ASSERT_FALSE(text.empty());
    }
  });
  for (auto& t : threads) t.join();
  scraper.join();
  EXPECT_EQ(c.value(), double{kThreads} * kPerThread);
  EXPECT_EQ(g.value(), double{kThreads} * kPerThread);
  for (const char* k : {"even", "odd"}) {
    const Histogram::Snapshot s = hf.with({k}).snapshot();
    const uint64_t n = uint64_t{kThreads / 2} * kPerThread;
    EXPECT_EQ(s.count, n);
    // Values 0, 1, 2 in turn (kPerThread is 1 mod 3: one extra 0).
    EXPECT_EQ(s.cumulative[0], uint64_t{kThreads / 2} * (kPerThread / 3 + 1));
    EXPECT_EQ(s.cumulative[2], n);
    EXPECT_EQ(s.sum, double{kThreads / 2} * (kPerThread / 3) * 3);
  }
}

TEST(MetricsTest, ReRegistrationReturnsTheSameFamily) {
  Registry r;
  auto& a = r.counter("sluice_a_total", "a", {"x"});
  auto& b = r.counter("sluice_a_total", "a", {"x"});
  EXPECT_EQ(&a, &b);
  const double bounds[] = {1, 2};
  auto& h1 = r.histogram("sluice_h", "h", {}, bounds);
  auto& h2 = r.histogram("sluice_h", "h", {}, bounds);
  EXPECT_EQ(&h1, &h2);
}

TEST(MetricsDeathTest, BrokenNamesAreBugs) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  EXPECT_DEATH(r.counter("sluice_requests", "no _total"), "must end in _total");
  EXPECT_DEATH(r.gauge("sluice-bad", "dash"), "invalid metric name");
  EXPECT_DEATH(r.gauge("sluice_g", "g", {"__reserved"}), "invalid label name");
  const double bounds[] = {1};
  EXPECT_DEATH(r.histogram("sluice_h", "h", {"le"}, bounds), "label 'le'");
  const double unsorted[] = {2, 1};
  EXPECT_DEATH(r.histogram("sluice_h", "h", {}, unsorted), "increase strictly");
  r.histogram("sluice_lat", "h", {}, bounds);
  EXPECT_DEATH(r.gauge("sluice_lat_count", "clash"), "collides");
  EXPECT_DEATH(r.gauge("sluice_lat", "clash"), "different type");
  EXPECT_DEATH(r.gauge("sluice_x", "x", {"a"}).with({"1", "2"}), "takes 1 label values");
}

TEST(EngineMetricsTest, VllmFamiliesWithModelName) {
  Registry r;
  EngineMetrics m = register_engine_metrics(r, "gemma-3-270m");
  EngineMetrics m2 = register_engine_metrics(r, "other");  // a second model shares families
  m.num_requests_running->set(3);
  m.num_requests_waiting->set(1);
  m.kv_cache_usage_perc->set(0.25);
  m.prompt_tokens->inc(100);
  m.generation_tokens->inc(7);
  m.prefix_cache_queries->inc(100);
  m.prefix_cache_hits->inc(64);
  m.num_preemptions->inc();
  m.request_success_for("length").inc();
  m.request_success_for("stop").inc();
  m.request_success_for("stop").inc();
  m.time_to_first_token->observe(0.042);
  m.inter_token_latency->observe(0.0031);
  m.e2e_request_latency->observe(1.2);
  m.request_queue_time->observe(0.0001);
  m.set_cache_config(16, 4096);
  m2.generation_tokens->inc(5);
  EXPECT_EQ(&m.request_success_for("abort"), m.request_success[2]);

  const std::string text = r.render();
  for (const char* line : {
           "vllm:num_requests_running{model_name=\"gemma-3-270m\"} 3\n",
           "vllm:num_requests_waiting{model_name=\"gemma-3-270m\"} 1\n",
           "vllm:kv_cache_usage_perc{model_name=\"gemma-3-270m\"} 0.25\n",
           "vllm:cache_config_info{model_name=\"gemma-3-270m\",block_size=\"16\",num_gpu_blocks="
           "\"4096\"} 1\n",
           "vllm:prefix_cache_queries_total{model_name=\"gemma-3-270m\"} 100\n",
           "vllm:prefix_cache_hits_total{model_name=\"gemma-3-270m\"} 64\n",
           "vllm:num_preemptions_total{model_name=\"gemma-3-270m\"} 1\n",
           "vllm:prompt_tokens_total{model_name=\"gemma-3-270m\"} 100\n",
           "vllm:generation_tokens_total{model_name=\"gemma-3-270m\"} 7\n",
           "vllm:generation_tokens_total{model_name=\"other\"} 5\n",
           "vllm:request_success_total{model_name=\"gemma-3-270m\",finished_reason=\"stop\"} 2\n",
           "vllm:request_success_total{model_name=\"gemma-3-270m\",finished_reason=\"length\"} 1\n",
           "vllm:request_success_total{model_name=\"gemma-3-270m\",finished_reason=\"abort\"} 0\n",
           "vllm:request_success_total{model_name=\"other\",finished_reason=\"error\"} 0\n",
           "vllm:time_to_first_token_seconds_bucket{model_name=\"gemma-3-270m\",le=\"0.04\"} 0\n",
           "vllm:time_to_first_token_seconds_bucket{model_name=\"gemma-3-270m\",le=\"0.06\"} 1\n",
           "vllm:inter_token_latency_seconds_bucket{model_name=\"gemma-3-270m\",le=\"0.004\"} 1\n",
           "vllm:e2e_request_latency_seconds_count{model_name=\"gemma-3-270m\"} 1\n",
           "vllm:request_queue_time_seconds_bucket{model_name=\"gemma-3-270m\",le=\"0.0005\"} 1\n",
           "# TYPE vllm:time_to_first_token_seconds histogram\n",
           "# TYPE vllm:prompt_tokens_total counter\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  // Every vllm: sample carries model_name.
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("vllm:")) {
      EXPECT_NE(line.find("{model_name=\""), std::string::npos) << line;
    }
  }
}

// ---- promtool ----

constexpr const char* kPromtool = "/usr/bin/promtool";

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs `promtool check metrics` with `text` on stdin; stdout and stderr together.
CommandResult promtool_check(const std::string& text) {
  const std::string path =
      ::testing::TempDir() + "sluice_metrics_" + std::to_string(getpid()) + ".txt";
  {
    std::ofstream f(path, std::ios::binary);
    f << text;
  }
  const std::string cmd = std::string(kPromtool) + " check metrics < '" + path + "' 2>&1";
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::filesystem::remove(path);
  return r;
}

// A registry with every kind, our names and the vLLM families, filled in.
std::string full_registry_text() {
  Registry r;
  EngineMetrics m = register_engine_metrics(r, "gemma-3-270m");
  m.num_requests_running->set(2);
  m.kv_cache_usage_perc->set(0.5);
  m.prompt_tokens->inc(12);
  m.request_success_for("stop").inc();
  m.time_to_first_token->observe(0.012);
  m.inter_token_latency->observe(0.004);
  m.e2e_request_latency->observe(0.9);
  m.request_queue_time->observe(0.0002);
  m.set_cache_config(16, 1024);
  r.counter("sluice_http_requests_total", "HTTP requests by route and status.", {"route", "code"})
      .with({"/v1/chat/completions", "200"})
      .inc();
  r.counter("sluice_tenant_tokens_total", "Tokens per tenant and kind.", {"tenant", "kind"})
      .with({"acme", "prompt"})
      .inc(42);
  r.gauge("sluice_http_connections", "Open HTTP connections.").with({}).set(5);
  r.gauge("sluice_build_info", "Build information.", {"version"}).with({"0.1.0 \"dev\"\n"}).set(1);
  r.histogram("sluice_tokenize_duration_seconds", "Time to tokenize a prompt.", {},
              kInterTokenLatencyBucketsSeconds)
      .with({})
      .observe(0.0004);
  r.histogram("sluice_unobserved_seconds", "A histogram with no series yet.", {"tenant"},
              kInterTokenLatencyBucketsSeconds);
  return r.render();
}

TEST(PromtoolTest, CheckMetricsReportsNoProblems) {
  if (!std::filesystem::exists(kPromtool)) GTEST_SKIP() << kPromtool << " not installed";
  const CommandResult r = promtool_check(full_registry_text());
  // INTERFACES.md: exit 1 (a parse error) fails; exit 3 (lint problems) passes only when
  // every problem is the "metric names should not contain ':'" lint that the vllm: names,
  // fixed by the contract, cause in newer promtool versions.
  ASSERT_NE(r.exit_code, 1) << r.output;
  std::istringstream in(r.output);
  int unexpected = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (line.starts_with("vllm:") &&
        line.find("metric names should not contain ':'") != std::string::npos) {
      continue;
    }
    ++unexpected;
    ADD_FAILURE() << "promtool: " << line;
  }
  EXPECT_EQ(unexpected, 0);
  EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 3) << r.exit_code << "\n" << r.output;
}

TEST(PromtoolTest, DetectsABrokenExposition) {
  // Guards the check above: promtool really parses what we give it.
  if (!std::filesystem::exists(kPromtool)) GTEST_SKIP() << kPromtool << " not installed";
  const CommandResult r = promtool_check("# TYPE x counter\nx{a=\"unterminated} 1\n");
  EXPECT_NE(r.exit_code, 0) << r.output;
  const CommandResult lint = promtool_check(
      "# HELP sluice_things counter\n# TYPE sluice_things counter\nsluice_things 1\n");
  EXPECT_NE(lint.output.find("_total"), std::string::npos) << lint.output;
}

}  // namespace
}  // namespace sluice::frontend
