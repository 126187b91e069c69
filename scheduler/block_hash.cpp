#include "scheduler/block_hash.h"

#include <algorithm>

#include "common/check.h"

namespace sluice::scheduler {

BlockHash sha256_block_hash(const BlockHash& parent, std::span<const TokenId> tokens,
                            const CacheKeys& keys) {
  Sha256 h;
  h.update(std::span<const uint8_t>(parent.bytes));
  h.update_u32(static_cast<uint32_t>(tokens.size()));
  for (TokenId t : tokens) h.update_u32(static_cast<uint32_t>(t));
  h.update_u32(static_cast<uint32_t>(keys.cache_namespace.size()));
  h.update(keys.cache_namespace);
  h.update_u64(static_cast<uint64_t>(keys.adapter_id));
  return BlockHash{h.finish()};
}

void extend_block_hashes(const BlockHashFn& hash_fn, std::span<const TokenId> tokens,
                         int32_t block_size, const CacheKeys& keys,
                         std::vector<BlockHash>& hashes) {
  SLUICE_CHECK(block_size > 0, "block_size {} must be positive", block_size);
  const size_t num_full = tokens.size() / static_cast<size_t>(block_size);
  while (hashes.size() < num_full) {
    const size_t i = hashes.size();
    const BlockHash& parent = (i == 0) ? kRootBlockHash : hashes[i - 1];
    hashes.push_back(hash_fn(parent, tokens.subspan(i * block_size, block_size), keys));
  }
}

bool content_matches(const BlockContent& stored, const BlockContentView& candidate) {
  return stored.block_index == candidate.block_index && stored.parent == candidate.parent &&
         stored.keys == candidate.keys &&
         std::equal(stored.tokens.begin(), stored.tokens.end(), candidate.tokens.begin(),
                    candidate.tokens.end());
}

BlockContent to_content(const BlockContentView& view) {
  return BlockContent{view.parent, view.block_index,
                      std::vector<TokenId>(view.tokens.begin(), view.tokens.end()), view.keys};
}

}  // namespace sluice::scheduler
