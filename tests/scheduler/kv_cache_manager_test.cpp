#include "scheduler/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "scheduler_test_util.h"

namespace sluice::scheduler {
namespace {

using testing::make_kv;
using testing::spec_ptr;

constexpr KvGroupSpec kFull{KvGroupKind::kFull, 0, 4, 16};

SequenceState make_seq(uint64_t id, std::vector<TokenId> prompt, CacheKeys keys = {}) {
  RequestSpec r = testing::make_request(id, std::move(prompt), 8, std::move(keys));
  return SequenceState(SequenceId(id), spec_ptr(std::move(r)), 0, id);
}

std::vector<TokenId> iota_tokens(int n, int from = 1) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), from);
  return t;
}

// Allocates and "computes" `n` more tokens (after `hit` if given), as a step would.
void compute(KvCacheManager& kv, SequenceState& seq, int32_t n, const PrefixHit& hit = {}) {
  auto delta = kv.allocate_slots(seq, n, hit);
  ASSERT_TRUE(delta.has_value());
  if (hit.num_tokens > 0) seq.num_computed_tokens = hit.num_tokens;
  seq.num_computed_tokens += n;
  kv.cache_full_blocks(seq);
  kv.check_integrity();
}

TEST(KvCacheManager, CreateRejectsBadGroups) {
  EXPECT_FALSE(KvCacheManager::create({}).is_ok());
  EXPECT_FALSE(KvCacheManager::create({{KvGroupKind::kFull, 0, 0, 8}}).is_ok());
  EXPECT_FALSE(KvCacheManager::create({{KvGroupKind::kFull, 0, 4, 0}}).is_ok());
  auto s = KvCacheManager::create({{KvGroupKind::kSliding, 0, 4, 8}});
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("window"), std::string::npos);
}

TEST(KvCacheManager, CheckFitsNamesTheGroup) {
  auto kv = make_kv({kFull, {KvGroupKind::kSliding, 8, 4, 6}});
  EXPECT_TRUE(kv.check_fits(64, 8).is_ok());  // full: 16 blocks; sliding: (8+8+3)/4+1 = 5
  Status s = kv.check_fits(65, 8);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("full group 0"), std::string::npos) << s.message();
  EXPECT_TRUE(kv.check_fits(20, 16).is_ok());  // sliding: min(5 blocks of tokens, 7) <= 6
  s = kv.check_fits(40, 16);                   // sliding: min(10, (8+16+3)/4+1 = 7) > 6
  EXPECT_NE(s.message().find("sliding group 1"), std::string::npos) << s.message();
}

TEST(KvCacheManager, SecondSequenceHitsTheSharedPrefix) {
  auto kv = make_kv({kFull});
  SequenceState a = make_seq(1, iota_tokens(10));
  EXPECT_EQ(kv.find_cached_prefix(a).num_tokens, 0);
  compute(kv, a, 10);
  EXPECT_EQ(kv.pool(0).num_cached_blocks(), 2);  // the partial third block is not cached

  std::vector<TokenId> b_prompt = iota_tokens(10);
  b_prompt.insert(b_prompt.end(), {70, 71, 72});
  SequenceState b = make_seq(2, b_prompt);
  PrefixHit hit = kv.find_cached_prefix(b);
  EXPECT_EQ(hit.num_tokens, 8);
  ASSERT_EQ(hit.blocks[0].size(), 2u);
  EXPECT_EQ(hit.blocks[0][0], a.kv.block_tables[0][0]);
  EXPECT_EQ(hit.blocks[0][1], a.kv.block_tables[0][1]);
  compute(kv, b, 5, hit);
  EXPECT_EQ(kv.pool(0).block(hit.blocks[0][0]).ref_count, 2);
  EXPECT_EQ(b.kv.block_tables[0].size(), 4u);
  EXPECT_NE(b.kv.block_tables[0][2], a.kv.block_tables[0][2]);

  const KvCacheStats st = kv.stats();
  EXPECT_EQ(st.prefix_query_tokens, 10 + 13);
  EXPECT_EQ(st.prefix_hit_tokens, 8);

  kv.free(a);
  kv.free(b);
  kv.check_integrity();
  EXPECT_EQ(kv.pool(0).num_free_blocks(), 16);
  EXPECT_EQ(kv.pool(0).num_evictable_blocks(), 3);  // a's 2 blocks and b's third
}

TEST(KvCacheManager, HitLeavesAtLeastOneTokenToCompute) {
  auto kv = make_kv({kFull});
  SequenceState a = make_seq(1, iota_tokens(12));
  compute(kv, a, 12);
  SequenceState same = make_seq(2, iota_tokens(12));
  EXPECT_EQ(kv.find_cached_prefix(same).num_tokens, 8);  // not 12: logits need a token
  SequenceState shorter = make_seq(3, iota_tokens(9));
  EXPECT_EQ(kv.find_cached_prefix(shorter).num_tokens, 8);
}

TEST(KvCacheManager, NamespacesAndAdaptersNeverShareBlocks) {
  auto kv = make_kv({kFull});
  SequenceState a = make_seq(1, iota_tokens(12), {"acme", 0});
  compute(kv, a, 12);
  SequenceState other_tenant = make_seq(2, iota_tokens(13), {"globex", 0});
  EXPECT_EQ(kv.find_cached_prefix(other_tenant).num_tokens, 0);
  SequenceState other_adapter = make_seq(3, iota_tokens(13), {"acme", 2});
  EXPECT_EQ(kv.find_cached_prefix(other_adapter).num_tokens, 0);
  SequenceState same_tenant = make_seq(4, iota_tokens(13), {"acme", 0});
  EXPECT_EQ(kv.find_cached_prefix(same_tenant).num_tokens, 12);
}

TEST(KvCacheManager, PrefixCachingOff) {
  KvCacheOptions off;
  off.enable_prefix_caching = false;
  auto kv = make_kv({kFull}, off);
  SequenceState a = make_seq(1, iota_tokens(12));
  compute(kv, a, 12);
  EXPECT_EQ(kv.pool(0).num_cached_blocks(), 0);
  SequenceState b = make_seq(2, iota_tokens(13));
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 0);
  EXPECT_EQ(kv.stats().prefix_query_tokens, 0);
}

TEST(KvCacheManager, ShortPoolReturnsNulloptAndChangesNothing) {
  auto kv = make_kv({{KvGroupKind::kFull, 0, 4, 4}});
  SequenceState a = make_seq(1, iota_tokens(8));
  compute(kv, a, 8);
  kv.free(a);  // 2 cached blocks, now evictable
  ASSERT_EQ(kv.pool(0).num_evictable_blocks(), 2);

  // Needs 5 blocks: 2 from the hit (free, so they count against the free pool) + 3 new.
  std::vector<TokenId> long_prompt = iota_tokens(8);
  for (int i = 0; i < 9; ++i) long_prompt.push_back(90 + i);
  SequenceState b = make_seq(2, long_prompt);
  PrefixHit hit = kv.find_cached_prefix(b);
  ASSERT_EQ(hit.num_tokens, 8);
  EXPECT_FALSE(kv.allocate_slots(b, 9, hit).has_value());
  EXPECT_FALSE(b.kv.holds_blocks());
  EXPECT_EQ(kv.pool(0).num_free_blocks(), 4);
  EXPECT_EQ(kv.pool(0).num_evictable_blocks(), 2);
  kv.check_integrity();

  // 4 blocks fit, and allocating the new ones must not evict the hit's own blocks.
  long_prompt.resize(15);
  SequenceState c = make_seq(3, long_prompt);
  hit = kv.find_cached_prefix(c);
  ASSERT_EQ(hit.num_tokens, 8);
  compute(kv, c, 7, hit);
  EXPECT_EQ(c.kv.block_tables[0][0], hit.blocks[0][0]);
  EXPECT_TRUE(kv.pool(0).block(hit.blocks[0][0]).hash.has_value());
  EXPECT_TRUE(kv.pool(0).block(hit.blocks[0][1]).hash.has_value());
  EXPECT_EQ(kv.pool(0).num_free_blocks(), 0);
}

TEST(KvCacheManager, ForkSharesBlocksAndCopiesTheLastOnWrite) {
  auto kv = make_kv({kFull, {KvGroupKind::kSliding, 8, 4, 16}});
  SequenceState parent = make_seq(1, iota_tokens(6));
  compute(kv, parent, 6);
  SequenceState child = parent.fork(SequenceId(2), 1);
  kv.fork(parent, child);
  for (int g = 0; g < 2; ++g) {
    for (BlockId b : parent.kv.block_tables[g]) EXPECT_EQ(kv.pool(g).block(b).ref_count, 2);
  }
  parent.append_output(40);
  child.append_output(41);

  auto d = kv.allocate_slots(child, 1);
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->copies.size(), 2u);  // one per group: the shared, half-full block 1
  for (const BlockCopy& c : d->copies) {
    EXPECT_EQ(c.src, parent.kv.block_tables[c.group][1]);
    EXPECT_EQ(c.dst, child.kv.block_tables[c.group][1]);
    EXPECT_NE(c.src, c.dst);
    EXPECT_EQ(kv.pool(c.group).block(c.src).ref_count, 1);
  }
  EXPECT_EQ(child.kv.block_tables[0][0], parent.kv.block_tables[0][0]);  // full: still shared
  auto p = kv.allocate_slots(parent, 1);  // sole owner now: writes in place
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->copies.empty());
  kv.check_integrity();
  kv.free(parent);
  kv.free(child);
  kv.check_integrity();
  EXPECT_EQ(testing::free_counts(kv), (std::vector<int32_t>{16, 16}));
}

TEST(KvCacheManager, UsageCountsEvictableBlocksAsFree) {
  auto kv = make_kv({{KvGroupKind::kFull, 0, 4, 10}, {KvGroupKind::kFull, 0, 4, 20}});
  SequenceState a = make_seq(1, iota_tokens(16));
  compute(kv, a, 16);
  KvCacheStats st = kv.stats();
  EXPECT_DOUBLE_EQ(st.usage, 0.4);  // 4 of 10 in group 0 (4 of 20 in group 1)
  EXPECT_EQ(st.num_used_blocks, (std::vector<int32_t>{4, 4}));
  kv.free(a);
  st = kv.stats();
  EXPECT_DOUBLE_EQ(st.usage, 0.0);
  EXPECT_EQ(st.num_evictable_blocks, (std::vector<int32_t>{4, 4}));
  EXPECT_EQ(kv.reset_prefix_cache(), 8);
  EXPECT_EQ(kv.stats().num_evictable_blocks, (std::vector<int32_t>{0, 0}));
}

}  // namespace
}  // namespace sluice::scheduler
