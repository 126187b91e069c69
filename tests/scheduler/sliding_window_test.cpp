// Sliding-window KV groups: blocks that leave the window go back to the pool (and stay in
// the prefix cache until evicted), and a prefix hit needs the window's blocks resident.

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "scheduler/kv_cache_manager.h"
#include "scheduler_test_util.h"

namespace sluice::scheduler {
namespace {

using testing::make_kv;

constexpr int32_t kWindow = 8;
constexpr int32_t kBlock = 4;

SequenceState make_seq(uint64_t id, std::vector<TokenId> prompt) {
  return SequenceState(SequenceId(id),
                       testing::spec_ptr(testing::make_request(id, std::move(prompt), 4)), 0, id);
}

std::vector<TokenId> prefix_of(const std::vector<TokenId>& t, size_t n, std::vector<TokenId> tail) {
  std::vector<TokenId> out(t.begin(), t.begin() + static_cast<ptrdiff_t>(n));
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

class SlidingWindow : public ::testing::Test {
 protected:
  // Group 0: full, roomy. Group 1: sliding, only 6 blocks.
  KvCacheManager kv =
      make_kv({{KvGroupKind::kFull, 0, kBlock, 32}, {KvGroupKind::kSliding, kWindow, kBlock, 6}});
  std::vector<TokenId> tokens = [] {
    std::vector<TokenId> t(41);
    std::iota(t.begin(), t.end(), 100);
    return t;
  }();

  // Computes 40 tokens of `a` one block per step, checking the window after each step.
  void run_a(SequenceState& a) {
    for (int k = 0; k < 10; ++k) {
      const int32_t start = k * kBlock;
      auto delta = kv.allocate_slots(a, kBlock);
      ASSERT_TRUE(delta.has_value()) << "step " << k;
      // The block that left the window (positions < start - W) is handed back.
      EXPECT_EQ(delta->freed[1].size(), k >= 3 ? 1u : 0u) << "step " << k;
      EXPECT_TRUE(delta->freed[0].empty());
      a.num_computed_tokens += kBlock;
      kv.cache_full_blocks(a);
      kv.check_integrity();
      const auto& table = a.kv.block_tables[1];
      const int32_t dead = std::max(0, start - kWindow) / kBlock;
      for (int32_t j = 0; j < static_cast<int32_t>(table.size()); ++j) {
        EXPECT_EQ(table[j] == kNullBlockId, j < dead) << "step " << k << " block " << j;
      }
      EXPECT_LE(kv.pool(1).num_used_blocks(), 3);
      EXPECT_EQ(kv.pool(0).num_used_blocks(), k + 1);  // the full group keeps everything
    }
  }
};

TEST_F(SlidingWindow, OutOfWindowBlocksReturnToThePoolButStayCached) {
  SequenceState a = make_seq(1, tokens);
  run_a(a);
  // 6-block pool: a holds blocks 7, 8, 9; blocks 4, 5, 6 are free but still cached; the
  // pool had to evict 0..3 to keep going.
  EXPECT_EQ(kv.pool(1).num_used_blocks(), 3);
  EXPECT_EQ(kv.pool(1).num_evictable_blocks(), 3);
  EXPECT_EQ(kv.pool(1).num_evictions(), 4);
}

TEST_F(SlidingWindow, HitNeedsTheWindowBlocks) {
  SequenceState a = make_seq(1, tokens);
  run_a(a);

  // Prefix 16: the full group has it, but the sliding blocks covering [8, 16) were
  // evicted, and so were all earlier ones: no shorter prefix has its window either.
  SequenceState b16 = make_seq(2, prefix_of(tokens, 16, {7}));
  EXPECT_EQ(kv.find_cached_prefix(b16).num_tokens, 0);

  // Prefix 28: window [20, 28) = sliding blocks 5 and 6, still cached although a released
  // them long ago.
  SequenceState b28 = make_seq(3, prefix_of(tokens, 28, {7, 8}));
  PrefixHit hit = kv.find_cached_prefix(b28);
  ASSERT_EQ(hit.num_tokens, 28);
  ASSERT_EQ(hit.blocks[0].size(), 7u);
  ASSERT_EQ(hit.blocks[1].size(), 7u);
  for (int j = 0; j < 5; ++j) EXPECT_EQ(hit.blocks[1][j], kNullBlockId) << j;
  EXPECT_NE(hit.blocks[1][5], kNullBlockId);
  EXPECT_NE(hit.blocks[1][6], kNullBlockId);
  for (int j = 0; j < 7; ++j) EXPECT_EQ(hit.blocks[0][j], a.kv.block_tables[0][j]);

  const int32_t free_before = kv.pool(1).num_free_blocks();
  auto delta = kv.allocate_slots(b28, 2, hit);
  ASSERT_TRUE(delta.has_value());
  b28.num_computed_tokens = 30;
  // The two window blocks left the free queue and one new block was taken.
  EXPECT_EQ(kv.pool(1).num_free_blocks(), free_before - 3);
  EXPECT_EQ(kv.pool(1).block(hit.blocks[1][5]).ref_count, 1);
  kv.check_integrity();
  kv.free(a);
  kv.free(b28);
  kv.check_integrity();
  EXPECT_EQ(testing::free_counts(kv), (std::vector<int32_t>{32, 6}));
}

TEST_F(SlidingWindow, EvictedWindowBlockShortensTheHit) {
  SequenceState a = make_seq(1, tokens);
  run_a(a);
  kv.free(a);
  // Freed last block first: the LRU order is now 4, 5, 6 (released earlier), then 9, 8, 7.
  // Evicting two drops sliding blocks 4 and 5 (and in the full group, two of a's blocks
  // from its tail, 9 and 8).
  ASSERT_EQ(kv.evict_cached_blocks(2), 4);
  // Prefix 28 needs sliding blocks 5, 6: 5 is gone. Prefix 24 needs 4, 5: gone. And so
  // on down to 0, although the full group still holds every block of those prefixes.
  SequenceState b = make_seq(2, prefix_of(tokens, 28, {7}));
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 0);
  // Prefix 32 needs sliding blocks 6 and 7: both cached.
  SequenceState c = make_seq(3, prefix_of(tokens, 32, {7, 8, 9}));
  EXPECT_EQ(kv.find_cached_prefix(c).num_tokens, 32);
  // Prefix 40 is capped by the full group, which lost blocks 8 and 9: back to 32.
  SequenceState d = make_seq(4, prefix_of(tokens, 40, {7}));
  EXPECT_EQ(kv.find_cached_prefix(d).num_tokens, 32);
}

}  // namespace
}  // namespace sluice::scheduler
