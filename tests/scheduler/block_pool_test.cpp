#include "scheduler/block_pool.h"

#include <gtest/gtest.h>

#include <vector>

namespace sluice::scheduler {
namespace {

// A distinct hash and content for block index `i` of a made-up sequence.
struct FakeBlock {
  std::vector<TokenId> tokens;
  CacheKeys keys{"t", 0};
  BlockHash hash;
  explicit FakeBlock(int i) : tokens{i, i + 1, i + 2, i + 3} {
    hash = sha256_block_hash(kRootBlockHash, tokens, keys);
  }
  BlockContentView view() const { return BlockContentView{kRootBlockHash, 0, tokens, keys}; }
};

TEST(BlockPool, AllocateAndReleaseKeepTheCounts) {
  BlockPool pool(8);
  pool.check_integrity();
  EXPECT_EQ(pool.num_free_blocks(), 8);
  auto a = pool.allocate(3);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size(), 3u);
  EXPECT_EQ(pool.num_used_blocks(), 3);
  for (BlockId b : *a) EXPECT_EQ(pool.block(b).ref_count, 1);
  pool.check_integrity();

  EXPECT_FALSE(pool.allocate(6).has_value());  // 5 free: refused, nothing changed
  EXPECT_EQ(pool.num_free_blocks(), 5);
  pool.check_integrity();

  pool.touch((*a)[0]);
  EXPECT_EQ(pool.block((*a)[0]).ref_count, 2);
  EXPECT_FALSE(pool.release((*a)[0]));
  EXPECT_TRUE(pool.release((*a)[0]));
  EXPECT_TRUE(pool.release((*a)[1]));
  EXPECT_TRUE(pool.release((*a)[2]));
  EXPECT_EQ(pool.num_free_blocks(), 8);
  pool.check_integrity();
}

TEST(BlockPool, UncachedBlocksAreReusedBeforeCachedOnesInLruOrder) {
  BlockPool pool(4);
  auto all = *pool.allocate(4);
  FakeBlock c0(0), c1(10);
  ASSERT_TRUE(pool.cache_block(all[0], c0.hash, c0.view()));
  ASSERT_TRUE(pool.cache_block(all[1], c1.hash, c1.view()));
  // Free order: cached 1, cached 0, uncached 2, uncached 3.
  pool.release(all[1]);
  pool.release(all[0]);
  pool.release(all[2]);
  pool.release(all[3]);
  pool.check_integrity();
  EXPECT_EQ(pool.num_evictable_blocks(), 2);

  // Uncached blocks first (the most recently freed at the head), then the least recently
  // freed cached block, whose hash is dropped.
  auto first = *pool.allocate(2);
  EXPECT_EQ(first, (std::vector<BlockId>{all[3], all[2]}));
  EXPECT_EQ(pool.num_evictions(), 0);
  auto third = *pool.allocate(1);
  EXPECT_EQ(third[0], all[1]);
  EXPECT_EQ(pool.num_evictions(), 1);
  EXPECT_FALSE(pool.block(all[1]).hash.has_value());
  EXPECT_FALSE(pool.lookup(c1.hash, c1.view()).has_value());
  // The other cached block is still there for a hit.
  EXPECT_EQ(pool.lookup(c0.hash, c0.view()), all[0]);
  pool.check_integrity();
}

TEST(BlockPool, HitOnAFreeCachedBlockTakesItOutOfTheQueue) {
  BlockPool pool(3);
  auto all = *pool.allocate(3);
  FakeBlock c(5);
  ASSERT_TRUE(pool.cache_block(all[1], c.hash, c.view()));
  for (BlockId b : all) pool.release(b);
  auto hit = pool.lookup(c.hash, c.view());
  ASSERT_EQ(hit, all[1]);
  pool.touch(*hit);  // removed from the middle of the queue
  EXPECT_EQ(pool.num_free_blocks(), 2);
  EXPECT_EQ(pool.num_evictable_blocks(), 0);
  pool.check_integrity();
  auto rest = *pool.allocate(2);
  EXPECT_EQ(rest.size(), 2u);
  EXPECT_NE(rest[0], all[1]);
  EXPECT_NE(rest[1], all[1]);
  EXPECT_FALSE(pool.allocate(1).has_value());
  EXPECT_TRUE(pool.block(all[1]).hash.has_value());  // still cached while in use
  pool.check_integrity();
}

TEST(BlockPool, CollidingHashWithOtherContentIsRejected) {
  BlockPool pool(2);
  auto all = *pool.allocate(2);
  FakeBlock a(1), b(2);
  b.hash = a.hash;  // force a collision
  ASSERT_TRUE(pool.cache_block(all[0], a.hash, a.view()));
  EXPECT_EQ(pool.lookup(a.hash, a.view()), all[0]);
  EXPECT_FALSE(pool.lookup(b.hash, b.view()).has_value());
  EXPECT_EQ(pool.num_collisions_rejected(), 1);
  // A second block cannot take a hash that is already registered, nor be cached twice.
  EXPECT_FALSE(pool.cache_block(all[1], b.hash, b.view()));
  EXPECT_FALSE(pool.cache_block(all[0], FakeBlock(3).hash, FakeBlock(3).view()));
  EXPECT_FALSE(pool.block(all[1]).hash.has_value());
  pool.check_integrity();
}

TEST(BlockPool, EvictCachedDropsLeastRecentlyFreedFirst) {
  BlockPool pool(4);
  auto all = *pool.allocate(4);
  std::vector<FakeBlock> content;
  for (int i = 0; i < 4; ++i) content.emplace_back(i * 10);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(pool.cache_block(all[i], content[i].hash, content[i].view()));
  for (int i = 0; i < 4; ++i) pool.release(all[i]);
  EXPECT_EQ(pool.evict_cached(2), 2);
  EXPECT_FALSE(pool.lookup(content[0].hash, content[0].view()).has_value());
  EXPECT_FALSE(pool.lookup(content[1].hash, content[1].view()).has_value());
  EXPECT_TRUE(pool.lookup(content[2].hash, content[2].view()).has_value());
  EXPECT_EQ(pool.num_evictable_blocks(), 2);
  EXPECT_EQ(pool.num_free_blocks(), 4);
  pool.check_integrity();
  EXPECT_EQ(pool.evict_cached(100), 2);
  EXPECT_EQ(pool.num_cached_blocks(), 0);
  pool.check_integrity();
}

TEST(BlockPoolDeathTest, DoubleFreeIsCaught) {
  BlockPool pool(2);
  auto a = *pool.allocate(1);
  pool.release(a[0]);
  EXPECT_DEATH(pool.release(a[0]), "double free");
}

}  // namespace
}  // namespace sluice::scheduler
