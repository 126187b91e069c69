#include "scheduler/block_pool.h"

#include "common/check.h"

namespace sluice::scheduler {

BlockPool::BlockPool(int32_t num_blocks) {
  SLUICE_CHECK(num_blocks > 0, "BlockPool needs at least one block, got {}", num_blocks);
  blocks_.resize(static_cast<size_t>(num_blocks));
  for (int32_t i = 0; i < num_blocks; ++i) {
    blocks_[i].id = BlockId(i);
    push_back(blocks_[i]);
  }
}

KvBlock& BlockPool::at(BlockId id) {
  SLUICE_CHECK(id.value >= 0 && id.value < num_blocks(), "block id {} out of range [0, {})",
               id.value, num_blocks());
  return blocks_[static_cast<size_t>(id.value)];
}

const KvBlock& BlockPool::block(BlockId id) const {
  SLUICE_CHECK(id.value >= 0 && id.value < num_blocks(), "block id {} out of range [0, {})",
               id.value, num_blocks());
  return blocks_[static_cast<size_t>(id.value)];
}

void BlockPool::push_front(KvBlock& b) {
  SLUICE_DCHECK(!b.in_free_queue, "block {} queued twice", b.id.value);
  b.prev_free = -1;
  b.next_free = free_head_;
  if (free_head_ >= 0) {
    blocks_[free_head_].prev_free = b.id.value;
  } else {
    free_tail_ = b.id.value;
  }
  free_head_ = b.id.value;
  b.in_free_queue = true;
  ++num_free_;
  if (b.hash) ++num_evictable_;
}

void BlockPool::push_back(KvBlock& b) {
  SLUICE_DCHECK(!b.in_free_queue, "block {} queued twice", b.id.value);
  b.next_free = -1;
  b.prev_free = free_tail_;
  if (free_tail_ >= 0) {
    blocks_[free_tail_].next_free = b.id.value;
  } else {
    free_head_ = b.id.value;
  }
  free_tail_ = b.id.value;
  b.in_free_queue = true;
  ++num_free_;
  if (b.hash) ++num_evictable_;
}

void BlockPool::unlink(KvBlock& b) {
  SLUICE_DCHECK(b.in_free_queue, "unlinking block {} that is not queued", b.id.value);
  if (b.prev_free >= 0) {
    blocks_[b.prev_free].next_free = b.next_free;
  } else {
    free_head_ = b.next_free;
  }
  if (b.next_free >= 0) {
    blocks_[b.next_free].prev_free = b.prev_free;
  } else {
    free_tail_ = b.prev_free;
  }
  b.prev_free = b.next_free = -1;
  b.in_free_queue = false;
  --num_free_;
  if (b.hash) --num_evictable_;
}

void BlockPool::drop_hash(KvBlock& b) {
  if (!b.hash) return;
  auto it = cached_.find(*b.hash);
  SLUICE_CHECK(it != cached_.end() && it->second == b.id.value,
               "block {} has a hash that the cache map does not point back to", b.id.value);
  cached_.erase(it);
  if (b.in_free_queue) --num_evictable_;
  b.hash.reset();
  b.content = BlockContent{};
}

std::optional<std::vector<BlockId>> BlockPool::allocate(int32_t n) {
  SLUICE_CHECK(n >= 0, "allocate({}) with a negative count", n);
  if (n > num_free_) return std::nullopt;
  std::vector<BlockId> out;
  out.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    KvBlock& b = blocks_[free_head_];
    unlink(b);
    if (b.hash) {
      drop_hash(b);
      ++num_evictions_;
    }
    SLUICE_CHECK(b.ref_count == 0, "free block {} has ref_count {}", b.id.value, b.ref_count);
    b.ref_count = 1;
    out.push_back(b.id);
  }
  return out;
}

void BlockPool::touch(BlockId id) {
  KvBlock& b = at(id);
  if (b.ref_count == 0) {
    SLUICE_CHECK(b.in_free_queue, "block {} has ref_count 0 but is not free", id.value);
    unlink(b);
  }
  ++b.ref_count;
}

bool BlockPool::release(BlockId id) {
  KvBlock& b = at(id);
  SLUICE_CHECK(b.ref_count > 0, "releasing block {} with ref_count {} (double free?)", id.value,
               b.ref_count);
  if (--b.ref_count > 0) return false;
  if (b.hash) {
    push_back(b);
  } else {
    push_front(b);
  }
  return true;
}

std::optional<BlockId> BlockPool::lookup(const BlockHash& hash, const BlockContentView& content) {
  auto it = cached_.find(hash);
  if (it == cached_.end()) return std::nullopt;
  const KvBlock& b = blocks_[it->second];
  if (!content_matches(b.content, content)) {
    ++num_collisions_rejected_;
    return std::nullopt;
  }
  return b.id;
}

bool BlockPool::cache_block(BlockId id, const BlockHash& hash, const BlockContentView& content) {
  KvBlock& b = at(id);
  SLUICE_CHECK(b.ref_count > 0, "caching block {} that is not in use", id.value);
  if (b.hash) return false;
  if (!cached_.emplace(hash, id.value).second) return false;
  b.hash = hash;
  b.content = to_content(content);
  return true;
}

int32_t BlockPool::evict_cached(int32_t max_blocks) {
  int32_t dropped = 0;
  // Uncached blocks precede cached ones in the queue, so the first hashed block met from
  // the head is the least recently freed cached one.
  for (int32_t i = free_head_; i >= 0 && dropped < max_blocks;) {
    KvBlock& b = blocks_[i];
    i = b.next_free;
    if (!b.hash) continue;
    drop_hash(b);
    ++num_evictions_;
    ++dropped;
  }
  return dropped;
}

void BlockPool::check_integrity() const {
  const int32_t total = num_blocks();
  int32_t queued = 0;
  int32_t evictable = 0;
  bool seen_cached = false;
  int32_t prev = -1;
  for (int32_t i = free_head_; i >= 0; i = blocks_[i].next_free) {
    SLUICE_CHECK(i < total, "free queue link {} out of range", i);
    const KvBlock& b = blocks_[i];
    SLUICE_CHECK(b.in_free_queue, "block {} is linked in the free queue but not marked", i);
    SLUICE_CHECK(b.prev_free == prev, "block {} prev link {} != {}", i, b.prev_free, prev);
    SLUICE_CHECK(b.ref_count == 0, "free block {} has ref_count {}", i, b.ref_count);
    if (b.hash) {
      seen_cached = true;
      ++evictable;
    } else {
      SLUICE_CHECK(!seen_cached, "uncached free block {} sits behind cached ones", i);
    }
    prev = i;
    ++queued;
    SLUICE_CHECK(queued <= total, "free queue has a cycle");
  }
  SLUICE_CHECK(prev == free_tail_, "free queue tail {} != last linked block {}", free_tail_, prev);
  SLUICE_CHECK(queued == num_free_, "free queue holds {} blocks but num_free is {}", queued,
               num_free_);
  SLUICE_CHECK(evictable == num_evictable_, "{} evictable blocks queued but counter says {}",
               evictable, num_evictable_);
  int32_t used = 0;
  int32_t hashed = 0;
  for (const KvBlock& b : blocks_) {
    SLUICE_CHECK(b.ref_count >= 0, "block {} has negative ref_count {}", b.id.value, b.ref_count);
    if (b.ref_count > 0) {
      ++used;
      SLUICE_CHECK(!b.in_free_queue, "block {} in use (ref {}) but queued as free", b.id.value,
                   b.ref_count);
    } else {
      SLUICE_CHECK(b.in_free_queue, "block {} has ref_count 0 but is not queued", b.id.value);
    }
    if (b.hash) {
      ++hashed;
      auto it = cached_.find(*b.hash);
      SLUICE_CHECK(it != cached_.end() && it->second == b.id.value,
                   "block {} hash is missing from the cache map", b.id.value);
    }
  }
  SLUICE_CHECK(used + num_free_ == total, "used {} + free {} != total {}", used, num_free_, total);
  SLUICE_CHECK(hashed == static_cast<int32_t>(cached_.size()),
               "{} blocks hold a hash but the cache map has {} entries", hashed, cached_.size());
  for (const auto& [hash, index] : cached_) {
    SLUICE_CHECK(index >= 0 && index < total && blocks_[index].hash == hash,
                 "cache map entry points to block {} that does not hold that hash", index);
  }
}

}  // namespace sluice::scheduler
