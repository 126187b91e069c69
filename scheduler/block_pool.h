#pragma once
// BlockPool: the KV blocks of one KV group, their reference counts and the prefix cache.
//
// Owns: for each block a ref count (how many sequences' block tables hold it), an optional
// content hash (set while the block is in the prefix cache, with the content it was
// registered with), and the free queue. The executor owns the K/V memory the block ids
// index; the pool only decides which id holds what.
//
// Free queue: every block with ref_count 0, as an intrusive doubly linked list (O(1) removal
// from the middle when a cached block is hit again). Uncached free blocks sit at the head,
// cached ones behind them in LRU order (least recently freed first). allocate() pops the
// head, so uncached blocks go first and a cached block is evicted (its hash dropped) only on
// demand. Engine thread only.

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/ids.h"  // BlockId
#include "scheduler/block_hash.h"

namespace sluice::scheduler {

// A block-table entry that holds no block: a sliding-window group's blocks that left the
// window. The executor never reads them (the window mask excludes those positions).
inline constexpr BlockId kNullBlockId{-1};

struct KvBlock {
  BlockId id;
  int32_t ref_count = 0;
  std::optional<BlockHash> hash;  // set while the block is in the prefix cache
  BlockContent content;           // what it was cached with; meaningful while hash is set
  // Free-queue links, as block indices (-1: none). Valid while in_free_queue.
  int32_t prev_free = -1;
  int32_t next_free = -1;
  bool in_free_queue = false;
};

class BlockPool {
 public:
  explicit BlockPool(int32_t num_blocks);

  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  // Blocks with ref_count 0 (uncached plus evictable cached ones).
  int32_t num_free_blocks() const { return num_free_; }
  // Blocks with ref_count > 0.
  int32_t num_used_blocks() const { return num_blocks() - num_free_; }
  // Free blocks that still hold a hash (a later hit can reuse them).
  int32_t num_evictable_blocks() const { return num_evictable_; }
  // Blocks holding a hash, used or free.
  int32_t num_cached_blocks() const { return static_cast<int32_t>(cached_.size()); }
  // Cached blocks whose hash was dropped to make room, since construction.
  int64_t num_evictions() const { return num_evictions_; }
  // Lookups whose hash matched a cached block with different content (a collision).
  int64_t num_collisions_rejected() const { return num_collisions_rejected_; }

  // Takes `n` free blocks from the head of the free queue (uncached first, then the least
  // recently freed cached ones, whose hash is dropped). Each comes back with ref_count 1.
  // Returns nullopt, changing nothing, when fewer than `n` blocks are free.
  std::optional<std::vector<BlockId>> allocate(int32_t n);

  // Adds a reference. A free block (necessarily a cached one, found by lookup) leaves the
  // free queue.
  void touch(BlockId id);

  // Drops a reference. At zero the block becomes free: a cached block goes to the tail of
  // the queue (kept for hits, evicted last), an uncached one to the head (reused first).
  // Returns true when the block became free.
  bool release(BlockId id);

  // The cached block registered under `hash` whose stored content equals `content`, or
  // nullopt when no block has this hash or when it has but the content differs (a collision;
  // counted). Does not add a reference.
  std::optional<BlockId> lookup(const BlockHash& hash, const BlockContentView& content);

  // Registers a full, in-use block under `hash`. Returns false, leaving the block uncached,
  // when it already has a hash or another block holds this hash (NOTE: duplicates are not
  // merged, so block tables stay append-only).
  bool cache_block(BlockId id, const BlockHash& hash, const BlockContentView& content);

  // Drops the hash of up to `max_blocks` evictable blocks, least recently freed first; they
  // stay free. Returns how many were dropped.
  int32_t evict_cached(int32_t max_blocks);

  const KvBlock& block(BlockId id) const;

  // Aborts (SLUICE_CHECK) when the bookkeeping is inconsistent: free + used != total, a
  // negative ref count, a queued block in use or an unqueued one free, broken links, uncached
  // blocks behind cached ones in the queue, or a hash map entry that disagrees with its block.
  void check_integrity() const;

 private:
  KvBlock& at(BlockId id);
  void push_front(KvBlock& b);
  void push_back(KvBlock& b);
  void unlink(KvBlock& b);
  void drop_hash(KvBlock& b);

  std::vector<KvBlock> blocks_;
  int32_t free_head_ = -1;
  int32_t free_tail_ = -1;
  int32_t num_free_ = 0;
  int32_t num_evictable_ = 0;
  int64_t num_evictions_ = 0;
  int64_t num_collisions_rejected_ = 0;
  std::unordered_map<BlockHash, int32_t, BlockHashHasher> cached_;  // hash -> block index
};

}  // namespace sluice::scheduler
