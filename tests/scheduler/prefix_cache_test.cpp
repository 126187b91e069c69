// The prefix cache through the scheduler: a later request with a shared prefix gets a hit
// (counted, and fewer tokens computed), generates exactly the tokens of a miss, cache
// namespaces never hit each other, and forced hash collisions change no output.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "scheduler/scheduler.h"
#include "scheduler_test_util.h"

namespace sluice::scheduler {
namespace {

using testing::FakeExecutor;
using testing::make_request;
using testing::make_scheduler;
using testing::run_to_completion;

const std::vector<KvGroupSpec> kGroups = {{KvGroupKind::kFull, 0, 4, 64},
                                          {KvGroupKind::kSliding, 8, 4, 32}};

SchedulerConfig config() {
  SchedulerConfig c;
  c.max_num_batched_tokens = 64;
  c.max_num_seqs = 8;
  c.max_model_len = 512;
  return c;
}

std::vector<TokenId> concat(std::vector<TokenId> a, const std::vector<TokenId>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class PrefixCache : public ::testing::Test {
 protected:
  std::mt19937_64 rng{11};
  std::vector<TokenId> base = testing::random_tokens(rng, 33);

  // Runs `requests` one after another (each to completion) and returns the tokens. One
  // executor per scheduler: it holds the (simulated) KV memory the prefix cache points into.
  std::map<testing::ChoiceKey, std::vector<TokenId>> run_in_turn(
      Scheduler& s, const std::vector<RequestSpec>& requests) {
    auto it = executors_.find(&s);
    if (it == executors_.end()) {
      it = executors_.emplace(&s, std::make_unique<FakeExecutor>(s.kv_cache())).first;
    }
    FakeExecutor& ex = *it->second;
    std::map<testing::ChoiceKey, std::vector<TokenId>> tokens;
    for (const auto& r : requests) {
      EXPECT_TRUE(s.add_request(r).is_ok());
      auto log = run_to_completion(s, ex);
      tokens.insert(log.tokens.begin(), log.tokens.end());
    }
    return tokens;
  }

 private:
  std::map<const Scheduler*, std::unique_ptr<FakeExecutor>> executors_;
};

TEST_F(PrefixCache, SharedPrefixHitsAndMatchesAMiss) {
  const std::vector<RequestSpec> requests = {
      make_request(1, concat(base, {1, 2, 3}), 12),
      make_request(2, concat(base, {4, 5}), 12),
  };
  auto cached = make_scheduler(kGroups, config());
  const auto with_cache = run_in_turn(*cached, requests);

  KvCacheOptions off;
  off.enable_prefix_caching = false;
  auto uncached = make_scheduler(kGroups, config(), off);
  const auto without_cache = run_in_turn(*uncached, requests);

  EXPECT_EQ(with_cache, without_cache);
  const SchedulerStats st = cached->stats();
  EXPECT_EQ(st.kv.prefix_query_tokens, 36 + 35);
  EXPECT_EQ(st.kv.prefix_hit_tokens, 32);  // request 2: the 8 full blocks of the base
  EXPECT_EQ(st.num_computed_tokens, uncached->stats().num_computed_tokens - 32);
  EXPECT_EQ(uncached->stats().kv.prefix_hit_tokens, 0);
  EXPECT_EQ(with_cache.at(testing::key(2)),
            testing::run_alone(kGroups, requests[1]).at(testing::key(2)));
}

TEST_F(PrefixCache, NamespacesNeverHitEachOther) {
  auto s = make_scheduler(kGroups, config());
  const auto prompt = concat(base, {9});
  run_in_turn(*s, {make_request(1, prompt, 4, {"acme", 0})});
  run_in_turn(*s, {make_request(2, prompt, 4, {"globex", 0})});
  EXPECT_EQ(s->stats().kv.prefix_hit_tokens, 0);
  run_in_turn(*s, {make_request(3, prompt, 4, {"acme", 1})});  // another adapter
  EXPECT_EQ(s->stats().kv.prefix_hit_tokens, 0);
  run_in_turn(*s, {make_request(4, prompt, 4, {"acme", 0})});
  EXPECT_EQ(s->stats().kv.prefix_hit_tokens, 32);
}

TEST_F(PrefixCache, RequestsStartedTogetherStillAgree) {
  // Submitted at once, several requests share a prefix while it is being computed; later
  // ones hit what earlier ones finished. All must match their solo (miss) tokens.
  auto s = make_scheduler(kGroups, config());
  FakeExecutor ex(s->kv_cache());
  std::vector<RequestSpec> requests;
  for (uint64_t id = 1; id <= 6; ++id) {
    requests.push_back(make_request(id, concat(base, testing::random_tokens(rng, id)), 10));
    ASSERT_TRUE(s->add_request(requests.back()).is_ok());
  }
  auto log = run_to_completion(*s, ex);
  for (const auto& r : requests) {
    EXPECT_EQ(log.tokens[testing::key(r.id.value)],
              testing::run_alone(kGroups, r).at(testing::key(r.id.value)));
  }
}

TEST_F(PrefixCache, ForcedCollisionsChangeNoOutput) {
  KvCacheOptions colliding;
  colliding.hash_fn = [](const BlockHash&, std::span<const TokenId> tokens, const CacheKeys&) {
    BlockHash h;
    h.bytes[0] = static_cast<uint8_t>(tokens[0] % 2);  // two hash values in all
    return h;
  };
  auto s = make_scheduler(kGroups, config(), colliding);
  std::vector<RequestSpec> requests;
  for (uint64_t id = 1; id <= 8; ++id) {
    const auto prefix_len = static_cast<size_t>(id % 3 == 0 ? 0 : 8 * (id % 4 + 1));
    std::vector<TokenId> prompt(base.begin(), base.begin() + static_cast<ptrdiff_t>(prefix_len));
    requests.push_back(make_request(id, concat(prompt, testing::random_tokens(rng, 9)), 10));
  }
  const auto tokens = run_in_turn(*s, requests);
  for (const auto& r : requests) {
    EXPECT_EQ(tokens.at(testing::key(r.id.value)),
              testing::run_alone(kGroups, r).at(testing::key(r.id.value)))
        << "request " << r.id.value;
  }
  EXPECT_GT(s->stats().kv.num_collisions_rejected, 0);
  EXPECT_GT(s->stats().kv.prefix_hit_tokens, 0);  // equal content still hits
}

}  // namespace
}  // namespace sluice::scheduler
