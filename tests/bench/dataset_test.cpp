// sluice-bench's datasets and arrival schedules: seeded determinism, exact lengths and
// ranges, the shared prefix, word-count fitting, JSONL parsing, Poisson statistics.

#include "sluice_bench/dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

namespace sluice::bench {
namespace {

TEST(Dataset, LengthRange) {
  EXPECT_EQ(length_range(100, 0.25).lo, 75);
  EXPECT_EQ(length_range(100, 0.25).hi, 125);
  EXPECT_EQ(length_range(16, 0).lo, 16);
  EXPECT_EQ(length_range(16, 0).hi, 16);
  EXPECT_EQ(length_range(1, 0.5).lo, 1);  // never 0
  EXPECT_EQ(length_range(1, 0.5).hi, 1);
  EXPECT_EQ(length_range(10, 0.99).lo, 1);
  EXPECT_EQ(length_range(10, 0.99).hi, 19);
}

TEST(Dataset, TokenPromptsHaveExactLengthsAndAreSeeded) {
  SyntheticOptions opt{50, 16, 8, 0, 0, 4, 512, 7};
  const std::vector<BenchPrompt> a = make_token_prompts(opt);
  const std::vector<BenchPrompt> b = make_token_prompts(opt);
  ASSERT_EQ(a.size(), 50u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt_ids.size(), 16u);
    EXPECT_EQ(a[i].prompt_len, 16);
    EXPECT_TRUE(a[i].prompt_len_exact);
    EXPECT_EQ(a[i].output_len, 8);
    EXPECT_EQ(a[i].prompt_ids, b[i].prompt_ids);
    for (int32_t id : a[i].prompt_ids) {
      EXPECT_GE(id, 4);
      EXPECT_LT(id, 512);
    }
  }
  EXPECT_NE(a[0].prompt_ids, a[1].prompt_ids);
  opt.seed = 8;
  EXPECT_NE(make_token_prompts(opt)[0].prompt_ids, a[0].prompt_ids);
}

TEST(Dataset, TokenPromptLengthsSpanTheRange) {
  const std::vector<BenchPrompt> p = make_token_prompts({2000, 100, 40, 0.5, 0, 4, 1000, 1});
  std::set<int64_t> in, out;
  for (const BenchPrompt& x : p) {
    in.insert(x.prompt_len);
    out.insert(x.output_len);
  }
  EXPECT_EQ(*in.begin(), 50);
  EXPECT_EQ(*in.rbegin(), 150);
  EXPECT_EQ(*out.begin(), 20);
  EXPECT_EQ(*out.rbegin(), 60);
  EXPECT_GT(in.size(), 90u);  // close to uniform over 101 values
}

TEST(Dataset, PrefixIsSharedAndSuffixesDiffer) {
  const std::vector<BenchPrompt> p = make_token_prompts({10, 8, 4, 0, 32, 4, 256000, 3});
  for (const BenchPrompt& x : p) {
    ASSERT_EQ(x.prompt_ids.size(), 40u);
    EXPECT_EQ(x.prompt_len, 40);
    EXPECT_TRUE(
        std::equal(x.prompt_ids.begin(), x.prompt_ids.begin() + 32, p[0].prompt_ids.begin()));
  }
  EXPECT_FALSE(std::equal(p[0].prompt_ids.begin() + 32, p[0].prompt_ids.end(),
                          p[1].prompt_ids.begin() + 32));
}

TEST(Dataset, WordPrompts) {
  const std::vector<BenchPrompt> p = make_word_prompts({5, 20, 8, 0, 12, 0, 0, 9}, 10);
  const std::vector<std::string> pw = prefix_words(9, 30);
  ASSERT_EQ(p.size(), 5u);
  for (const BenchPrompt& x : p) {
    EXPECT_EQ(x.prefix_text, join_words(pw, 10));
    EXPECT_EQ(x.target_len, 12 + 20);
    EXPECT_GE(x.words.size(), 40u);
    EXPECT_EQ(x.prompt_text, join_words(x.words, 20));
    EXPECT_FALSE(x.prompt_len_exact);
  }
  // prefix_words(s, k) is a prefix of prefix_words(s, n).
  const std::vector<std::string> short_list = prefix_words(9, 10);
  EXPECT_TRUE(std::equal(short_list.begin(), short_list.end(), pw.begin()));
  EXPECT_EQ(join_words({"a", "b", "c"}, 2), "a b");
  EXPECT_EQ(join_words({"a", "b"}, 5), "a b");
  EXPECT_EQ(join_words({"a"}, 0), "");
}

TEST(Dataset, FitWordCount) {
  int calls = 0;
  // A template of 7 tokens and one token per word: exact, in few calls.
  auto overhead7 = [&](int64_t k) {
    ++calls;
    return k + 7;
  };
  EXPECT_EQ(fit_word_count(50, 200, 50, overhead7), 43);
  EXPECT_LE(calls, 3);
  // Two tokens per word: 51 is between 25 (50) and 26 (52); the tie goes to the shorter.
  auto two = [](int64_t k) { return 2 * k; };
  EXPECT_EQ(fit_word_count(51, 200, 51, two), 25);
  EXPECT_EQ(fit_word_count(52, 200, 1, two), 26);
  // Unreachable targets clamp to the ends.
  EXPECT_EQ(fit_word_count(5, 100, 5, overhead7), 1);
  EXPECT_EQ(fit_word_count(500, 100, 5, overhead7), 100);
  // Uneven word costs: every k's count is checked against the best found by brute force.
  std::vector<int64_t> cost(300);
  std::mt19937_64 rng(5);
  for (int64_t& c : cost) c = 1 + static_cast<int64_t>(rng() % 3);
  std::vector<int64_t> prefix(301, 0);
  for (size_t i = 0; i < cost.size(); ++i) prefix[i + 1] = prefix[i] + cost[i];
  auto uneven = [&](int64_t k) { return prefix[static_cast<size_t>(k)] + 3; };
  for (int64_t target : {10, 77, 150, 401}) {
    const int64_t k = fit_word_count(target, 300, target, uneven);
    int64_t best = std::numeric_limits<int64_t>::max();
    for (int64_t j = 1; j <= 300; ++j) best = std::min(best, std::abs(uneven(j) - target));
    EXPECT_EQ(std::abs(uneven(k) - target), best) << "target " << target;
  }
}

class JsonlTest : public ::testing::Test {
 protected:
  std::string path_ = "/tmp/sluice_bench_jsonl_test_" + std::to_string(getpid()) + ".jsonl";
  void write(const std::string& text) { std::ofstream(path_) << text; }
  void TearDown() override { std::remove(path_.c_str()); }
};

TEST_F(JsonlTest, TextAndTokenPromptsWrapAround) {
  write("{\"prompt\": \"hello there\", \"output_len\": 5}\n\n{\"prompt\": [2, 17, 300]}\n");
  StatusOr<std::vector<BenchPrompt>> r = load_jsonl(path_, 5, 9);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 5u);
  EXPECT_EQ((*r)[0].prompt_text, "hello there");
  EXPECT_EQ((*r)[0].output_len, 5);
  EXPECT_EQ((*r)[0].prompt_len, 0);
  EXPECT_EQ((*r)[1].prompt_ids, (std::vector<int32_t>{2, 17, 300}));
  EXPECT_EQ((*r)[1].prompt_len, 3);
  EXPECT_EQ((*r)[1].output_len, 9);  // the default
  EXPECT_EQ((*r)[4].prompt_text, "hello there");
}

TEST_F(JsonlTest, BadLinesNameTheirNumber) {
  write("{\"prompt\": \"ok\"}\n{\"prompt\": 3}\n");
  StatusOr<std::vector<BenchPrompt>> r = load_jsonl(path_, 1, 1);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find(":2:"), std::string::npos) << r.status().message();
  write("{\"prompt\": \"ok\", \"output_len\": 0}\n");
  EXPECT_FALSE(load_jsonl(path_, 1, 1).is_ok());
  write("not json\n");
  EXPECT_FALSE(load_jsonl(path_, 1, 1).is_ok());
  write("\n");
  EXPECT_FALSE(load_jsonl(path_, 1, 1).is_ok());
  EXPECT_EQ(load_jsonl("/nonexistent/x.jsonl", 1, 1).status().code(), StatusCode::kNotFound);
}

TEST(Dataset, PoissonArrivals) {
  const std::vector<double> t = poisson_arrivals(20000, 10.0, 1);
  ASSERT_EQ(t.size(), 20000u);
  EXPECT_EQ(t[0], 0);
  EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
  const double mean_gap = t.back() / 19999.0;
  EXPECT_NEAR(mean_gap, 0.1, 0.003);
  // Exponential gaps: the standard deviation equals the mean.
  double sq = 0;
  for (size_t i = 1; i < t.size(); ++i)
    sq += (t[i] - t[i - 1] - mean_gap) * (t[i] - t[i - 1] - mean_gap);
  EXPECT_NEAR(std::sqrt(sq / 19999.0), 0.1, 0.005);
  EXPECT_EQ(poisson_arrivals(20000, 10.0, 1), t);
  EXPECT_NE(poisson_arrivals(20000, 10.0, 2), t);
  for (double x : poisson_arrivals(5, std::numeric_limits<double>::infinity(), 1)) EXPECT_EQ(x, 0);
}

TEST(Dataset, TenantSchedule) {
  const std::vector<Arrival> s = tenant_schedule(1000, {20.0, 5.0}, 4);
  ASSERT_EQ(s.size(), 2000u);
  std::map<int, int> per_tenant;
  std::set<int64_t> prompts;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) {
      EXPECT_LE(s[i - 1].t_s, s[i].t_s);
    }
    ++per_tenant[s[i].tenant];
    prompts.insert(s[i].prompt_index);
    EXPECT_EQ(s[i].prompt_index / 1000, s[i].tenant);
  }
  EXPECT_EQ(per_tenant[0], 1000);
  EXPECT_EQ(per_tenant[1], 1000);
  EXPECT_EQ(prompts.size(), 2000u);
  // The faster tenant's requests come about four times as often early on.
  int early0 = 0, early1 = 0;
  for (const Arrival& a : s) {
    if (a.t_s < 40) (a.tenant == 0 ? early0 : early1)++;
  }
  EXPECT_NEAR(static_cast<double>(early0) / early1, 4.0, 0.6);
  // All at once: round-robin over tenants.
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<Arrival> rr = tenant_schedule(3, {inf, inf}, 1);
  const std::vector<int> order = {0, 1, 0, 1, 0, 1};
  for (size_t i = 0; i < rr.size(); ++i) EXPECT_EQ(rr[i].tenant, order[i]);
}

}  // namespace
}  // namespace sluice::bench
