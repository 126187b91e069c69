// Property test of BlockPool + KvCacheManager: thousands of random operations (admit with a
// prefix hit, extend, fork, free, evict, reset), with the invariants checked after each:
// pool integrity, every block's ref count equal to the block-table entries that hold it (no
// leak, no negative count), free + used = total, a refused allocation changing nothing, and
// every prefix-hit block holding exactly the K/V of the prefix it is reused for (tracked by
// a shadow of what each block was last filled with).

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "scheduler/kv_cache_manager.h"
#include "scheduler_test_util.h"

namespace sluice::scheduler {
namespace {

using testing::mix;

class KvPropertyTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  KvPropertyTest()
      : kv(testing::make_kv({{KvGroupKind::kFull, 0, 4, 128},
                             {KvGroupKind::kSliding, 12, 4, 40},
                             {KvGroupKind::kFull, 0, 8, 64}})),
        rng(GetParam()) {
    for (int g = 0; g < kv.num_groups(); ++g) shadow.emplace_back(kv.pool(g).num_blocks(), 0);
    for (int b = 0; b < 3; ++b) bases.push_back(testing::random_tokens(rng, 40, 20));
  }

  // What a block holding positions [0, end) of `seq` must contain.
  static uint64_t prefix_key(const SequenceState& seq, int32_t end) {
    uint64_t h = std::hash<std::string>{}(seq.cache_keys().cache_namespace);
    for (int32_t i = 0; i < end; ++i) h = mix(h, static_cast<uint64_t>(seq.tokens()[i]));
    return h | 1;  // never 0, which marks "nothing known"
  }

  int32_t pick(int32_t n) { return static_cast<int32_t>(rng() % static_cast<uint64_t>(n)); }

  void check_invariants() {
    kv.check_integrity();
    for (int g = 0; g < kv.num_groups(); ++g) {
      std::vector<int32_t> refs(kv.pool(g).num_blocks(), 0);
      for (const auto& s : live) {
        for (BlockId b : s->kv.block_tables[g]) {
          if (b != kNullBlockId) ++refs[b.value];
        }
      }
      for (int b = 0; b < kv.pool(g).num_blocks(); ++b) {
        ASSERT_EQ(kv.pool(g).block(BlockId(b)).ref_count, refs[b])
            << "group " << g << " block " << b;
      }
      ASSERT_EQ(kv.pool(g).num_free_blocks() + kv.pool(g).num_used_blocks(),
                kv.pool(g).num_blocks());
    }
  }

  // Allocates `n` tokens for `seq` (after `hit`) and "computes" them; false when refused,
  // in which case nothing may have changed.
  bool compute(SequenceState& seq, int32_t n, const PrefixHit& hit) {
    const auto free_before = testing::free_counts(kv);
    const auto tables_before = seq.kv.block_tables;
    auto delta = kv.allocate_slots(seq, n, hit);
    if (!delta) {
      EXPECT_EQ(testing::free_counts(kv), free_before);
      EXPECT_EQ(seq.kv.block_tables, tables_before);
      ++num_refused;
      return false;
    }
    num_copies += static_cast<int>(delta->copies.size());
    for (int g = 0; g < kv.num_groups(); ++g) {
      for (BlockId b : delta->allocated[g]) shadow[g][b.value] = 0;  // new owner, new content
    }
    const int32_t start = hit.num_tokens > 0 ? hit.num_tokens : seq.num_computed_tokens;
    const int32_t end = start + n;
    for (int g = 0; g < kv.num_groups(); ++g) {
      const int32_t bs = kv.group(g).block_size;
      for (int32_t j = start / bs; (j + 1) * bs <= end; ++j) {
        const BlockId b = seq.kv.block_tables[g][j];
        EXPECT_NE(b, kNullBlockId);
        shadow[g][b.value] = prefix_key(seq, (j + 1) * bs);
      }
    }
    seq.num_computed_tokens = end;
    kv.cache_full_blocks(seq);
    return true;
  }

  void op_admit() {
    std::vector<TokenId> prompt;
    if (pick(10) < 8) {
      const auto& base = bases[pick(static_cast<int32_t>(bases.size()))];
      prompt.assign(base.begin(), base.begin() + pick(41));
    }
    const auto tail = testing::random_tokens(rng, 1 + pick(20), 20);
    prompt.insert(prompt.end(), tail.begin(), tail.end());
    const CacheKeys keys{pick(4) == 0 ? "b" : "a", 0};
    auto seq = std::make_unique<SequenceState>(
        SequenceId(next_id), testing::spec_ptr(testing::make_request(next_id, prompt, 8, keys)), 0,
        next_id);
    ++next_id;
    PrefixHit hit = kv.find_cached_prefix(*seq);
    ASSERT_LT(hit.num_tokens, seq->num_tokens());
    ASSERT_EQ(hit.num_tokens % 8, 0);  // lcm of the block sizes
    for (int g = 0; g < kv.num_groups(); ++g) {
      const int32_t bs = kv.group(g).block_size;
      ASSERT_EQ(static_cast<int32_t>(hit.blocks[g].size()), hit.num_tokens / bs);
      for (size_t j = 0; j < hit.blocks[g].size(); ++j) {
        const BlockId b = hit.blocks[g][j];
        if (b == kNullBlockId) continue;
        ASSERT_EQ(shadow[g][b.value], prefix_key(*seq, static_cast<int32_t>(j + 1) * bs))
            << "group " << g << " block " << b.value << " reused for a different prefix";
      }
    }
    const int32_t remaining = seq->num_tokens() - hit.num_tokens;
    if (compute(*seq, 1 + pick(remaining), hit)) {
      num_hit_tokens += hit.num_tokens;
      live.push_back(std::move(seq));
    }
  }

  void op_extend() {
    SequenceState& seq = *live[pick(static_cast<int32_t>(live.size()))];
    if (seq.num_computed_tokens == seq.num_tokens()) {
      if (seq.num_tokens() >= 80) return;
      seq.append_output(static_cast<TokenId>(pick(20)));  // "sampled"
    }
    compute(seq, 1 + pick(std::min(12, seq.num_tokens() - seq.num_computed_tokens)), {});
  }

  void op_fork() {
    const SequenceState& parent = *live[pick(static_cast<int32_t>(live.size()))];
    auto child = std::make_unique<SequenceState>(parent.fork(SequenceId(next_id), 1));
    ++next_id;
    kv.fork(parent, *child);
    live.push_back(std::move(child));
  }

  void op_free() {
    const size_t i = static_cast<size_t>(pick(static_cast<int32_t>(live.size())));
    kv.free(*live[i]);
    live.erase(live.begin() + static_cast<ptrdiff_t>(i));
  }

  KvCacheManager kv;
  std::mt19937_64 rng;
  std::vector<std::vector<TokenId>> bases;
  std::vector<std::unique_ptr<SequenceState>> live;
  std::vector<std::vector<uint64_t>> shadow;  // [group][block] prefix_key of its content
  uint64_t next_id = 1;
  int num_refused = 0;
  int num_copies = 0;
  int64_t num_hit_tokens = 0;
};

TEST_P(KvPropertyTest, RandomOperationsKeepTheInvariants) {
  constexpr int kOps = 4000;
  for (int op = 0; op < kOps; ++op) {
    const int r = pick(100);
    if (live.empty() || (r < 25 && live.size() < 10)) {
      op_admit();
    } else if (r < 70) {
      op_extend();
    } else if (r < 78) {
      op_fork();
    } else if (r < 96) {
      op_free();
    } else if (r < 98) {
      kv.evict_cached_blocks(1 + pick(4));
    } else if (pick(20) == 0) {
      kv.reset_prefix_cache();
    }
    check_invariants();
    if (::testing::Test::HasFatalFailure()) return;
  }
  while (!live.empty()) op_free();
  check_invariants();
  for (int g = 0; g < kv.num_groups(); ++g) {
    EXPECT_EQ(kv.pool(g).num_free_blocks(), kv.pool(g).num_blocks());
  }
  // The run exercised what it claims to.
  const KvCacheStats st = kv.stats();
  EXPECT_GT(num_hit_tokens, 0);
  EXPECT_EQ(st.prefix_hit_tokens, num_hit_tokens);
  EXPECT_GT(num_refused, 0);
  EXPECT_GT(num_copies, 0);
  EXPECT_GT(st.num_evictions, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, KvPropertyTest, ::testing::Values(1u, 2u, 3u, 42u));

}  // namespace
}  // namespace sluice::scheduler
