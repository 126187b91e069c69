#pragma once
// KvCacheManager: the paged KV cache's bookkeeping across KV groups, with the prefix cache.
//
// Owns one BlockPool per KV group. A KV group is a set of layers with the same K/V shape
// (Gemma: the sliding-window layers, the global layers); the executor maps layers to groups,
// and KV-shared layers (Gemma 4 E2B/E4B) belong to no group. Every sequence has one block
// table per group (SequenceState::kv), which only this class changes. What it hands out
// (block tables, BlockDelta) goes into the StepPlan, from which the executor derives slots.
//
// Prefix hits (INTERFACES.md): the longest prefix for which every full-group block is
// resident and, per sliding group, the blocks covering the last W tokens of the prefix are
// resident. A hit never covers the whole sequence: at least one token is computed so that
// logits exist. Engine thread only.

#include <cstdint>
#include <optional>
#include <vector>

#include "common/status.h"
#include "scheduler/block_hash.h"
#include "scheduler/block_pool.h"
#include "scheduler/sequence.h"

namespace sluice::scheduler {

enum class KvGroupKind : uint8_t { kFull, kSliding };

struct KvGroupSpec {
  KvGroupKind kind = KvGroupKind::kFull;
  int32_t window = 0;       // tokens a query attends back over, itself included (sliding only)
  int32_t block_size = 16;  // tokens per block
  int32_t num_blocks = 0;   // pool size
};

struct KvCacheOptions {
  bool enable_prefix_caching = true;
  // Hash of one block; empty means sha256_block_hash. Tests inject a colliding one.
  BlockHashFn hash_fn;
};

struct PrefixHit {
  int32_t num_tokens = 0;  // cached prefix length, a multiple of every group's block size
  // [group] the prefix's block table: kNullBlockId for sliding blocks outside the window.
  std::vector<std::vector<BlockId>> blocks;
};

// Copy-on-write: the executor copies block `src`'s K/V into `dst` (same group) before the
// step's forward pass. Only the last, partly filled block of a forked sequence is copied.
struct BlockCopy {
  int32_t group = 0;
  BlockId src;
  BlockId dst;
};

// What one manager call changed in the pools.
struct BlockDelta {
  std::vector<std::vector<BlockId>> allocated;  // [group] blocks newly taken from the pool
  std::vector<std::vector<BlockId>> freed;      // [group] blocks whose ref count reached 0
  std::vector<BlockCopy> copies;

  void merge(const BlockDelta& other);
};

struct KvCacheStats {
  std::vector<int32_t> num_blocks;            // [group]
  std::vector<int32_t> num_used_blocks;       // [group] ref_count > 0
  std::vector<int32_t> num_evictable_blocks;  // [group] free but still cached
  // vllm:kv_cache_usage_perc, a 0-1 fraction: used / total of the fullest group (evictable
  // cached blocks count as free).
  double usage = 0.0;
  int64_t prefix_query_tokens = 0;  // tokens of sequences looked up at admission
  int64_t prefix_hit_tokens = 0;    // of those, tokens served from the cache
  int64_t num_evictions = 0;        // cached blocks whose hash was dropped for room
  int64_t num_collisions_rejected = 0;
};

class KvCacheManager {
 public:
  // Checks the group specs (at least one group; block_size, num_blocks > 0; window > 0 for
  // sliding groups) and builds one pool per group.
  static StatusOr<KvCacheManager> create(std::vector<KvGroupSpec> groups,
                                         KvCacheOptions options = {});

  int32_t num_groups() const { return static_cast<int32_t>(groups_.size()); }
  const KvGroupSpec& group(int32_t g) const { return groups_[g]; }
  const BlockPool& pool(int32_t g) const { return pools_[g]; }
  bool prefix_caching_enabled() const { return options_.enable_prefix_caching; }

  // Whether one sequence of `num_tokens` tokens, computed in chunks of at most
  // `max_chunk_tokens`, can fit the pools when it runs alone; else RESOURCE_EXHAUSTED naming
  // the group, the blocks it needs and the pool size.
  Status check_fits(int32_t num_tokens, int32_t max_chunk_tokens) const;

  // The longest cached prefix of `seq`, which must hold no blocks yet (new or preempted).
  // Takes no references; pass the result to allocate_slots in the same step. Empty when
  // prefix caching is off. Extends seq.kv.block_hashes.
  PrefixHit find_cached_prefix(SequenceState& seq);

  // Reserves KV slots for positions [start, start + num_new_tokens) in every group, where
  // start is hit.num_tokens when a hit is given (seq must hold no blocks) and
  // seq.num_computed_tokens otherwise; those tokens must be known (start + num_new_tokens <=
  // seq.num_tokens()). Takes references on the hit's blocks, releases sliding blocks that
  // left the window, copies a shared partly filled last block (copy-on-write) and appends new
  // blocks. Returns nullopt, changing nothing, if a pool is short; the caller then preempts.
  // Does not change seq.num_computed_tokens (the caller does). Counts the prefix query when
  // seq holds no blocks yet.
  std::optional<BlockDelta> allocate_slots(SequenceState& seq, int32_t num_new_tokens,
                                           const PrefixHit& hit = {});

  // Registers in the prefix cache the blocks of `seq` that are full and computed (below
  // seq.num_computed_tokens) and not registered yet. No-op when prefix caching is off.
  void cache_full_blocks(SequenceState& seq);

  // Drops all of seq's block references (last block first, so the tail of a prefix is
  // evicted before its head) and empties its tables. Freed cached blocks stay cached.
  BlockDelta free(SequenceState& seq);

  // Gives `child` (holding no blocks) the same block tables as `parent`, one more reference
  // each: forked choices share the prompt's blocks; a shared last block is copied on write.
  void fork(const SequenceState& parent, SequenceState& child);

  // Drops the hashes of up to `max_blocks` evictable blocks per group (LRU first). Returns
  // the total dropped. reset_prefix_cache() drops them all.
  int32_t evict_cached_blocks(int32_t max_blocks);
  int32_t reset_prefix_cache();

  KvCacheStats stats() const;
  // Integrity of every pool (BlockPool::check_integrity).
  void check_integrity() const;

 private:
  KvCacheManager(std::vector<KvGroupSpec> groups, KvCacheOptions options);
  void ensure_shape(SequenceState& seq) const;
  // The cached block of seq's block `j` in group `g`, if resident with matching content.
  std::optional<BlockId> lookup_block(SequenceState& seq, int32_t g, int32_t j);
  // Number of leading blocks (from index 0) of group g whose positions are all before
  // `start` - window: the sliding group's blocks that no query at >= start reads.
  int32_t num_out_of_window_blocks(int32_t g, int32_t start) const;

  std::vector<KvGroupSpec> groups_;
  KvCacheOptions options_;
  std::vector<BlockPool> pools_;
  int32_t hit_alignment_ = 1;  // lcm of the groups' block sizes
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
};

}  // namespace sluice::scheduler
