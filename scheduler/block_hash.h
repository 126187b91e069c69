#pragma once
// Content hashes of full KV blocks, the keys of the prefix cache.
//
// Block i of a sequence is named by hash(parent = hash of block i-1, its block_size token ids,
// extra keys). The chain makes the hash depend on the whole prefix, as the block's K/V do.
// The extra keys (CacheKeys) go into every block: the cache namespace, which the server
// derives from the tenant, and the adapter id, so tenants with different namespaces and
// different adapters can never share a block.
//
// The default hash is SHA-256 (sha256.h). A test can inject another BlockHashFn (say, one
// that always collides); the pool then still refuses a wrong block because every cached
// block also keeps its BlockContent, which a lookup compares in full (block_pool.h).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/ids.h"  // TokenId
#include "scheduler/sha256.h"

namespace sluice::scheduler {

struct BlockHash {
  Sha256Digest bytes{};
  bool operator==(const BlockHash&) const = default;
};

// The parent of block 0: all zero bytes.
inline constexpr BlockHash kRootBlockHash{};

struct BlockHashHasher {
  size_t operator()(const BlockHash& h) const noexcept {
    size_t v;
    std::memcpy(&v, h.bytes.data(), sizeof(v));  // a digest's bytes are already uniform
    return v;
  }
};

// Extra keys mixed into every block hash; equal keys are required to share a block.
struct CacheKeys {
  std::string cache_namespace;  // derived by the server from the tenant (never client-only)
  int64_t adapter_id = 0;       // 0: the base model
  bool operator==(const CacheKeys&) const = default;
};

// hash(parent, tokens of exactly one block, keys). Must be deterministic.
using BlockHashFn = std::function<BlockHash(
    const BlockHash& parent, std::span<const TokenId> tokens, const CacheKeys& keys)>;

// SHA-256 over an unambiguous encoding: parent digest, token count and token ids (u32 LE),
// namespace length and bytes, adapter id (u64 LE).
BlockHash sha256_block_hash(const BlockHash& parent, std::span<const TokenId> tokens,
                            const CacheKeys& keys);

// Appends to `hashes` the hashes of the full blocks of `tokens` that it does not hold yet
// (hashes[i] names tokens [i*block_size, (i+1)*block_size)). A trailing partial block gets
// no hash. `hashes` must have been built from the same tokens, block size and keys.
void extend_block_hashes(const BlockHashFn& hash_fn, std::span<const TokenId> tokens,
                         int32_t block_size, const CacheKeys& keys, std::vector<BlockHash>& hashes);

// Everything that identifies a full block besides its hash. The pool keeps one per cached
// block and compares it on every lookup, so a hash collision cannot hand out wrong K/V.
// NOTE: `parent` is compared as a digest: with a collision-free hash, equal parents mean
// equal histories; under a forced-collision test hash, only the block's own tokens, keys
// and index tell blocks apart.
struct BlockContent {
  BlockHash parent;
  int32_t block_index = 0;  // position of the block in its sequence
  std::vector<TokenId> tokens;
  CacheKeys keys;
};

// A non-owning BlockContent, built by a lookup without copying tokens.
struct BlockContentView {
  const BlockHash& parent;
  int32_t block_index;
  std::span<const TokenId> tokens;
  const CacheKeys& keys;
};

bool content_matches(const BlockContent& stored, const BlockContentView& candidate);
BlockContent to_content(const BlockContentView& view);

}  // namespace sluice::scheduler
