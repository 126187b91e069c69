// Forced hash collisions (through the BlockHashFn test hook) never hand out a wrong block:
// the pool's content check compares the stored tokens, parent digest, index and cache keys.

#include <gtest/gtest.h>

#include <vector>

#include "scheduler/kv_cache_manager.h"
#include "scheduler_test_util.h"

namespace sluice::scheduler {
namespace {

using testing::make_kv;

SequenceState make_seq(uint64_t id, std::vector<TokenId> prompt, CacheKeys keys = {}) {
  return SequenceState(
      SequenceId(id),
      testing::spec_ptr(testing::make_request(id, std::move(prompt), 4, std::move(keys))), 0, id);
}

void compute_all(KvCacheManager& kv, SequenceState& seq) {
  ASSERT_TRUE(kv.allocate_slots(seq, seq.num_tokens()).has_value());
  seq.num_computed_tokens = seq.num_tokens();
  kv.cache_full_blocks(seq);
  kv.check_integrity();
}

// Every block hashes to the same value.
BlockHash constant_hash(const BlockHash&, std::span<const TokenId>, const CacheKeys&) {
  return BlockHash{};
}

// Ignores the parent and the keys: equal token blocks collide whatever precedes them.
BlockHash tokens_only_hash(const BlockHash&, std::span<const TokenId> tokens, const CacheKeys&) {
  return sha256_block_hash(kRootBlockHash, tokens, CacheKeys{});
}

TEST(HashCollision, ConstantHashOnlyEverHitsEqualContent) {
  KvCacheOptions options;
  options.hash_fn = constant_hash;
  auto kv = make_kv({{KvGroupKind::kFull, 0, 4, 16}}, options);
  SequenceState a = make_seq(1, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  compute_all(kv, a);
  // Only a's first block got the (single) hash; the second found it taken.
  EXPECT_EQ(kv.pool(0).num_cached_blocks(), 1);

  SequenceState other = make_seq(2, {11, 12, 13, 14, 15, 16, 17, 18, 19});
  EXPECT_EQ(kv.find_cached_prefix(other).num_tokens, 0);
  EXPECT_GE(kv.stats().num_collisions_rejected, 1);

  // Equal content still hits: block 0 matches; block 1's lookup lands on block 0's entry,
  // whose content (index, tokens) differs, so the hit stops there.
  SequenceState same = make_seq(3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  PrefixHit hit = kv.find_cached_prefix(same);
  ASSERT_EQ(hit.num_tokens, 4);
  EXPECT_EQ(hit.blocks[0][0], a.kv.block_tables[0][0]);
}

TEST(HashCollision, SlidingHitChecksTheParentDigest) {
  // A sliding-only model with a window of one block: a hit needs just the last block, so a
  // hash that ignored the chain would pair blocks with different histories.
  KvCacheOptions options;
  options.hash_fn = tokens_only_hash;
  auto kv = make_kv({{KvGroupKind::kSliding, 4, 4, 16}}, options);
  SequenceState a = make_seq(1, {1, 2, 3, 4, 9, 9, 9, 9, 5});
  compute_all(kv, a);

  SequenceState b = make_seq(2, {7, 7, 7, 7, 9, 9, 9, 9, 5});
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 0);
  EXPECT_GE(kv.stats().num_collisions_rejected, 1);

  SequenceState same = make_seq(3, {1, 2, 3, 4, 9, 9, 9, 9, 6});
  PrefixHit hit = kv.find_cached_prefix(same);
  ASSERT_EQ(hit.num_tokens, 8);
  EXPECT_EQ(hit.blocks[0][0], kNullBlockId);  // out of the window: not needed
  EXPECT_EQ(hit.blocks[0][1], a.kv.block_tables[0][1]);
}

TEST(HashCollision, NamespacesStaySeparateEvenWhenHashesCollide) {
  KvCacheOptions options;
  options.hash_fn = tokens_only_hash;
  auto kv = make_kv({{KvGroupKind::kFull, 0, 4, 16}}, options);
  SequenceState a = make_seq(1, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {"acme", 0});
  compute_all(kv, a);
  SequenceState b = make_seq(2, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {"globex", 0});
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 0);
  SequenceState c = make_seq(3, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {"acme", 1});
  EXPECT_EQ(kv.find_cached_prefix(c).num_tokens, 0);
  EXPECT_GE(kv.stats().num_collisions_rejected, 2);
  SequenceState d = make_seq(4, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {"acme", 0});
  EXPECT_EQ(kv.find_cached_prefix(d).num_tokens, 8);
}

TEST(HashCollision, StrongHashNeedsNoRejection) {
  auto kv = make_kv({{KvGroupKind::kSliding, 4, 4, 16}});
  SequenceState a = make_seq(1, {1, 2, 3, 4, 9, 9, 9, 9, 5});
  compute_all(kv, a);
  SequenceState b = make_seq(2, {7, 7, 7, 7, 9, 9, 9, 9, 5});
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 0);
  EXPECT_EQ(kv.stats().num_collisions_rejected, 0);  // the chained SHA-256 already differs
}

}  // namespace
}  // namespace sluice::scheduler
