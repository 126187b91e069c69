#include "scheduler/kv_cache_manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "common/check.h"

namespace sluice::scheduler {
namespace {

int32_t ceil_div(int32_t a, int32_t b) { return (a + b - 1) / b; }

const char* kind_name(KvGroupKind kind) { return kind == KvGroupKind::kFull ? "full" : "sliding"; }

}  // namespace

void BlockDelta::merge(const BlockDelta& other) {
  if (allocated.size() < other.allocated.size()) allocated.resize(other.allocated.size());
  if (freed.size() < other.freed.size()) freed.resize(other.freed.size());
  for (size_t g = 0; g < other.allocated.size(); ++g) {
    allocated[g].insert(allocated[g].end(), other.allocated[g].begin(), other.allocated[g].end());
  }
  for (size_t g = 0; g < other.freed.size(); ++g) {
    freed[g].insert(freed[g].end(), other.freed[g].begin(), other.freed[g].end());
  }
  copies.insert(copies.end(), other.copies.begin(), other.copies.end());
}

StatusOr<KvCacheManager> KvCacheManager::create(std::vector<KvGroupSpec> groups,
                                                KvCacheOptions options) {
  if (groups.empty()) return Status::invalid_argument("kv cache: no KV groups given");
  int64_t alignment = 1;
  for (size_t g = 0; g < groups.size(); ++g) {
    const KvGroupSpec& s = groups[g];
    if (s.block_size <= 0 || s.block_size > 4096) {
      return Status::invalid_argument(fmt::format(
          "kv cache: group {} block_size is {}; it must be in [1, 4096]", g, s.block_size));
    }
    if (s.num_blocks <= 0) {
      return Status::invalid_argument(
          fmt::format("kv cache: group {} has {} blocks; raise --kv-cache-memory-bytes or "
                      "--gpu-memory-utilization",
                      g, s.num_blocks));
    }
    if (s.kind == KvGroupKind::kSliding && s.window <= 0) {
      return Status::invalid_argument(
          fmt::format("kv cache: sliding group {} has window {}; it must be > 0", g, s.window));
    }
    alignment = std::lcm(alignment, static_cast<int64_t>(s.block_size));
    if (alignment > (1 << 20)) {
      return Status::invalid_argument(fmt::format(
          "kv cache: the block sizes' least common multiple exceeds {}; use equal block sizes",
          1 << 20));
    }
  }
  if (!options.hash_fn) options.hash_fn = sha256_block_hash;
  KvCacheManager m(std::move(groups), std::move(options));
  m.hit_alignment_ = static_cast<int32_t>(alignment);
  return m;
}

KvCacheManager::KvCacheManager(std::vector<KvGroupSpec> groups, KvCacheOptions options)
    : groups_(std::move(groups)), options_(std::move(options)) {
  pools_.reserve(groups_.size());
  for (const KvGroupSpec& s : groups_) pools_.emplace_back(s.num_blocks);
}

Status KvCacheManager::check_fits(int32_t num_tokens, int32_t max_chunk_tokens) const {
  for (int32_t g = 0; g < num_groups(); ++g) {
    const KvGroupSpec& s = groups_[g];
    int64_t need = ceil_div(num_tokens, s.block_size);
    if (s.kind == KvGroupKind::kSliding) {
      // The window behind the chunk, the chunk itself, and one block of misalignment.
      int64_t window_need =
          (static_cast<int64_t>(s.window) + max_chunk_tokens + s.block_size - 1) / s.block_size + 1;
      need = std::min(need, window_need);
    }
    if (need > s.num_blocks) {
      return Status::resource_exhausted(fmt::format(
          "kv cache: a sequence of {} tokens needs {} blocks in {} group {} but the pool has {}; "
          "shorten the request or enlarge the KV cache",
          num_tokens, need, kind_name(s.kind), g, s.num_blocks));
    }
  }
  return Status::ok();
}

void KvCacheManager::ensure_shape(SequenceState& seq) const {
  const size_t n = groups_.size();
  if (seq.kv.block_tables.size() == n) return;
  SLUICE_CHECK(seq.kv.block_tables.empty(), "sequence {} has KV state for {} groups, not {}",
               seq.id().value, seq.kv.block_tables.size(), n);
  seq.kv.block_tables.resize(n);
  seq.kv.block_hashes.resize(n);
  seq.kv.num_cached_blocks.assign(n, 0);
}

std::optional<BlockId> KvCacheManager::lookup_block(SequenceState& seq, int32_t g, int32_t j) {
  const int32_t bs = groups_[g].block_size;
  const auto& hashes = seq.kv.block_hashes[g];
  BlockContentView view{j == 0 ? kRootBlockHash : hashes[j - 1], j,
                        seq.tokens().subspan(static_cast<size_t>(j) * bs, bs), seq.cache_keys()};
  return pools_[g].lookup(hashes[j], view);
}

int32_t KvCacheManager::num_out_of_window_blocks(int32_t g, int32_t start) const {
  const KvGroupSpec& s = groups_[g];
  if (s.kind != KvGroupKind::kSliding) return 0;
  // NOTE: keeps the last `window` computed positions, one more than a query at `start`
  // reads, so that the rule matches the prefix-hit rule exactly.
  return std::max(0, start - s.window) / s.block_size;
}

PrefixHit KvCacheManager::find_cached_prefix(SequenceState& seq) {
  ensure_shape(seq);
  SLUICE_CHECK(!seq.kv.holds_blocks(), "find_cached_prefix on sequence {} that holds blocks",
               seq.id().value);
  PrefixHit hit;
  hit.blocks.resize(groups_.size());
  if (!options_.enable_prefix_caching) return hit;

  // At least one token must be computed, and a hit ends on every group's block boundary.
  int32_t limit = (seq.num_tokens() - 1) / hit_alignment_ * hit_alignment_;
  if (limit <= 0) return hit;

  // resident[g][j]: the cached block for block j of group g, if any.
  std::vector<std::vector<std::optional<BlockId>>> resident(groups_.size());
  std::vector<std::vector<int32_t>> misses_before(groups_.size());  // prefix count of misses
  for (int32_t g = 0; g < num_groups(); ++g) {
    const int32_t bs = groups_[g].block_size;
    extend_block_hashes(options_.hash_fn, seq.tokens(), bs, seq.cache_keys(),
                        seq.kv.block_hashes[g]);
    const int32_t num = limit / bs;
    resident[g].resize(num);
    misses_before[g].assign(num + 1, 0);
    for (int32_t j = 0; j < num; ++j) {
      // A full group only needs its leading run of resident blocks.
      if (groups_[g].kind == KvGroupKind::kFull && j > 0 && !resident[g][j - 1]) {
        misses_before[g][j + 1] = misses_before[g][j] + 1;
        continue;
      }
      resident[g][j] = lookup_block(seq, g, j);
      misses_before[g][j + 1] = misses_before[g][j] + (resident[g][j] ? 0 : 1);
    }
    if (groups_[g].kind == KvGroupKind::kFull) {
      int32_t run = 0;
      while (run < num && resident[g][run]) ++run;
      limit = std::min(limit, run * bs / hit_alignment_ * hit_alignment_);
    }
  }

  // Each sliding group lowers the prefix to the longest one whose window is resident. Full
  // groups accept any shorter prefix; sliding ones are re-checked until nothing moves.
  for (bool changed = true; changed && limit > 0;) {
    changed = false;
    for (int32_t g = 0; g < num_groups(); ++g) {
      const KvGroupSpec& s = groups_[g];
      if (s.kind != KvGroupKind::kSliding) continue;
      int32_t p = limit;
      for (; p > 0; p -= hit_alignment_) {
        const int32_t lo = std::max(0, p - s.window) / s.block_size;
        const int32_t hi = p / s.block_size;
        if (misses_before[g][hi] - misses_before[g][lo] == 0) break;
      }
      if (p < limit) {
        limit = p;
        changed = true;
      }
    }
  }

  hit.num_tokens = limit;
  for (int32_t g = 0; g < num_groups(); ++g) {
    const int32_t bs = groups_[g].block_size;
    const int32_t lo = num_out_of_window_blocks(g, limit);
    for (int32_t j = 0; j < limit / bs; ++j) {
      hit.blocks[g].push_back(j < lo ? kNullBlockId : *resident[g][j]);
    }
  }
  return hit;
}

std::optional<BlockDelta> KvCacheManager::allocate_slots(SequenceState& seq, int32_t num_new_tokens,
                                                         const PrefixHit& hit) {
  ensure_shape(seq);
  SLUICE_CHECK(num_new_tokens > 0, "allocate_slots with {} new tokens", num_new_tokens);
  const bool fresh = !seq.kv.holds_blocks();
  const bool apply_hit = hit.num_tokens > 0;
  if (apply_hit) {
    SLUICE_CHECK(fresh && seq.num_computed_tokens == 0,
                 "a prefix hit is applied to sequence {} that already holds blocks",
                 seq.id().value);
    SLUICE_CHECK(hit.blocks.size() == groups_.size(), "prefix hit has {} groups, not {}",
                 hit.blocks.size(), groups_.size());
  }
  const int32_t start = apply_hit ? hit.num_tokens : seq.num_computed_tokens;
  const int32_t end = start + num_new_tokens;
  SLUICE_CHECK(end <= seq.num_tokens(), "slots up to {} requested but sequence {} has {} tokens",
               end, seq.id().value, seq.num_tokens());

  // First pass: what each group needs, with nothing changed yet.
  struct GroupPlan {
    int32_t num_new_blocks = 0;
    int32_t cow_index = -1;  // block index to copy on write, or -1
    int32_t num_dead = 0;    // leading blocks out of the window
  };
  std::vector<GroupPlan> plans(groups_.size());
  for (int32_t g = 0; g < num_groups(); ++g) {
    const int32_t bs = groups_[g].block_size;
    const BlockPool& pool = pools_[g];
    const std::vector<BlockId>& table = apply_hit ? hit.blocks[g] : seq.kv.block_tables[g];
    GroupPlan& p = plans[g];
    int32_t available = pool.num_free_blocks();
    if (apply_hit) {
      for (BlockId b : table) {
        if (b != kNullBlockId && pool.block(b).ref_count == 0) --available;  // leaves the queue
      }
    }
    p.num_dead = std::min<int32_t>(num_out_of_window_blocks(g, start), table.size());
    for (int32_t j = 0; j < p.num_dead; ++j) {
      if (table[j] != kNullBlockId && pool.block(table[j]).ref_count == 1) ++available;
    }
    const int32_t idx = start / bs;
    if (start % bs != 0 && idx < static_cast<int32_t>(table.size()) && table[idx] != kNullBlockId &&
        pool.block(table[idx]).ref_count > 1) {
      p.cow_index = idx;
    }
    p.num_new_blocks = std::max<int32_t>(0, ceil_div(end, bs) - static_cast<int32_t>(table.size()));
    if (p.num_new_blocks + (p.cow_index >= 0 ? 1 : 0) > available) return std::nullopt;
  }

  // Second pass: apply. Hit blocks are referenced before anything is allocated, so that an
  // allocation cannot evict them.
  BlockDelta delta;
  delta.allocated.resize(groups_.size());
  delta.freed.resize(groups_.size());
  for (int32_t g = 0; g < num_groups(); ++g) {
    BlockPool& pool = pools_[g];
    std::vector<BlockId>& table = seq.kv.block_tables[g];
    const GroupPlan& p = plans[g];
    if (apply_hit) {
      table = hit.blocks[g];
      for (BlockId b : table) {
        if (b != kNullBlockId) pool.touch(b);
      }
      seq.kv.num_cached_blocks[g] = static_cast<int32_t>(table.size());
    }
    for (int32_t j = 0; j < p.num_dead; ++j) {
      if (table[j] == kNullBlockId) continue;
      if (pool.release(table[j])) delta.freed[g].push_back(table[j]);
      table[j] = kNullBlockId;
    }
    if (p.cow_index >= 0) {
      auto fresh_block = pool.allocate(1);
      SLUICE_CHECK(fresh_block.has_value(), "group {} ran short after its check", g);
      const BlockId src = table[p.cow_index];
      const BlockId dst = (*fresh_block)[0];
      delta.copies.push_back(BlockCopy{g, src, dst});
      delta.allocated[g].push_back(dst);
      SLUICE_CHECK(!pool.release(src), "copy-on-write source block {} had a single owner",
                   src.value);
      table[p.cow_index] = dst;
    }
    if (p.num_new_blocks > 0) {
      auto blocks = pool.allocate(p.num_new_blocks);
      SLUICE_CHECK(blocks.has_value(), "group {} ran short after its check", g);
      table.insert(table.end(), blocks->begin(), blocks->end());
      delta.allocated[g].insert(delta.allocated[g].end(), blocks->begin(), blocks->end());
    }
  }
  if (fresh && options_.enable_prefix_caching) {
    prefix_query_tokens_ += seq.num_tokens();
    prefix_hit_tokens_ += hit.num_tokens;
  }
  return delta;
}

void KvCacheManager::cache_full_blocks(SequenceState& seq) {
  if (!options_.enable_prefix_caching) return;
  ensure_shape(seq);
  for (int32_t g = 0; g < num_groups(); ++g) {
    const int32_t bs = groups_[g].block_size;
    const auto& table = seq.kv.block_tables[g];
    const int32_t num_full =
        std::min<int32_t>(seq.num_computed_tokens / bs, static_cast<int32_t>(table.size()));
    int32_t& done = seq.kv.num_cached_blocks[g];
    if (done >= num_full) continue;
    extend_block_hashes(options_.hash_fn, seq.tokens(), bs, seq.cache_keys(),
                        seq.kv.block_hashes[g]);
    const auto& hashes = seq.kv.block_hashes[g];
    for (int32_t j = done; j < num_full; ++j) {
      if (table[j] == kNullBlockId) continue;
      BlockContentView view{j == 0 ? kRootBlockHash : hashes[j - 1], j,
                            seq.tokens().subspan(static_cast<size_t>(j) * bs, bs),
                            seq.cache_keys()};
      pools_[g].cache_block(table[j], hashes[j], view);
    }
    done = num_full;
  }
}

BlockDelta KvCacheManager::free(SequenceState& seq) {
  BlockDelta delta;
  delta.allocated.resize(groups_.size());
  delta.freed.resize(groups_.size());
  for (size_t g = 0; g < seq.kv.block_tables.size(); ++g) {
    auto& table = seq.kv.block_tables[g];
    for (auto it = table.rbegin(); it != table.rend(); ++it) {
      if (*it != kNullBlockId && pools_[g].release(*it)) delta.freed[g].push_back(*it);
    }
    table.clear();
    seq.kv.num_cached_blocks[g] = 0;
  }
  return delta;
}

void KvCacheManager::fork(const SequenceState& parent, SequenceState& child) {
  SLUICE_CHECK(!child.kv.holds_blocks(), "fork into sequence {} that holds blocks",
               child.id().value);
  child.kv = parent.kv;
  for (size_t g = 0; g < child.kv.block_tables.size(); ++g) {
    for (BlockId b : child.kv.block_tables[g]) {
      if (b != kNullBlockId) pools_[g].touch(b);
    }
  }
}

int32_t KvCacheManager::evict_cached_blocks(int32_t max_blocks) {
  int32_t total = 0;
  for (BlockPool& pool : pools_) total += pool.evict_cached(max_blocks);
  return total;
}

int32_t KvCacheManager::reset_prefix_cache() {
  return evict_cached_blocks(std::numeric_limits<int32_t>::max());
}

KvCacheStats KvCacheManager::stats() const {
  KvCacheStats s;
  for (const BlockPool& pool : pools_) {
    s.num_blocks.push_back(pool.num_blocks());
    s.num_used_blocks.push_back(pool.num_used_blocks());
    s.num_evictable_blocks.push_back(pool.num_evictable_blocks());
    s.usage = std::max(s.usage, static_cast<double>(pool.num_used_blocks()) / pool.num_blocks());
    s.num_evictions += pool.num_evictions();
    s.num_collisions_rejected += pool.num_collisions_rejected();
  }
  s.prefix_query_tokens = prefix_query_tokens_;
  s.prefix_hit_tokens = prefix_hit_tokens_;
  return s;
}

void KvCacheManager::check_integrity() const {
  for (const BlockPool& pool : pools_) pool.check_integrity();
}

}  // namespace sluice::scheduler
