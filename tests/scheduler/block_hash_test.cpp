#include "scheduler/block_hash.h"

#include <gtest/gtest.h>

#include <vector>

namespace sluice::scheduler {
namespace {

std::vector<BlockHash> hashes_of(const std::vector<TokenId>& tokens, int32_t block_size,
                                 const CacheKeys& keys) {
  std::vector<BlockHash> out;
  extend_block_hashes(sha256_block_hash, tokens, block_size, keys, out);
  return out;
}

TEST(BlockHash, OnlyFullBlocksAreHashed) {
  const std::vector<TokenId> tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(hashes_of(tokens, 4, {}).size(), 2u);
  EXPECT_EQ(hashes_of(tokens, 5, {}).size(), 2u);
  EXPECT_EQ(hashes_of(tokens, 11, {}).size(), 0u);
}

TEST(BlockHash, ChainsTheParent) {
  // Same second block, different first block: the second hashes differ too.
  const auto a = hashes_of({1, 2, 3, 4, 9, 9, 9, 9}, 4, {});
  const auto b = hashes_of({1, 2, 3, 5, 9, 9, 9, 9}, 4, {});
  ASSERT_EQ(a.size(), 2u);
  EXPECT_NE(a[0], b[0]);
  EXPECT_NE(a[1], b[1]);
  // Same prefix: same hashes.
  EXPECT_EQ(hashes_of({1, 2, 3, 4, 9, 9, 9, 9, 0}, 4, {}), a);
  // The chain is exactly hash(parent, tokens, keys).
  const std::vector<TokenId> second = {9, 9, 9, 9};
  EXPECT_EQ(a[1], sha256_block_hash(a[0], second, {}));
  EXPECT_NE(a[1], sha256_block_hash(kRootBlockHash, second, {}));
}

TEST(BlockHash, ExtraKeysSeparateTenantsAndAdapters) {
  const std::vector<TokenId> tokens = {5, 6, 7, 8};
  const auto base = hashes_of(tokens, 4, {"acme", 0});
  EXPECT_EQ(base, hashes_of(tokens, 4, {"acme", 0}));
  EXPECT_NE(base, hashes_of(tokens, 4, {"globex", 0}));
  EXPECT_NE(base, hashes_of(tokens, 4, {"acmf", 0}));  // same length, one byte apart
  EXPECT_NE(base, hashes_of(tokens, 4, {"acme", 7}));
  EXPECT_NE(base, hashes_of(tokens, 4, {}));
  // The encoding is unambiguous: moving bytes between the namespace and the tokens changes
  // the hash (length prefixes).
  EXPECT_NE(hashes_of(tokens, 4, {"ab", 0}), hashes_of(tokens, 4, {"a", 0}));
}

TEST(BlockHash, IncrementalExtensionMatchesOneShot) {
  std::vector<TokenId> tokens;
  std::vector<BlockHash> incremental;
  for (TokenId t = 0; t < 37; ++t) {
    tokens.push_back(t * 3 % 11);
    extend_block_hashes(sha256_block_hash, tokens, 4, {"ns", 1}, incremental);
  }
  EXPECT_EQ(incremental, hashes_of(tokens, 4, {"ns", 1}));
  EXPECT_EQ(incremental.size(), 9u);
}

TEST(BlockHash, InjectedHashFunctionIsUsed) {
  int calls = 0;
  BlockHashFn constant = [&calls](const BlockHash&, std::span<const TokenId>, const CacheKeys&) {
    ++calls;
    return BlockHash{};
  };
  std::vector<BlockHash> out;
  extend_block_hashes(constant, std::vector<TokenId>{1, 2, 3, 4, 5, 6, 7, 8}, 4, {}, out);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(out[0], out[1]);
}

TEST(BlockHash, ContentMatchComparesEveryField) {
  const std::vector<TokenId> tokens = {1, 2, 3, 4};
  const CacheKeys keys{"acme", 0};
  const BlockHash parent = sha256_block_hash(kRootBlockHash, tokens, keys);
  const BlockContent stored = to_content(BlockContentView{parent, 1, tokens, keys});
  EXPECT_TRUE(content_matches(stored, BlockContentView{parent, 1, tokens, keys}));

  const std::vector<TokenId> other_tokens = {1, 2, 3, 5};
  EXPECT_FALSE(content_matches(stored, BlockContentView{parent, 1, other_tokens, keys}));
  EXPECT_FALSE(content_matches(stored, BlockContentView{kRootBlockHash, 1, tokens, keys}));
  EXPECT_FALSE(content_matches(stored, BlockContentView{parent, 2, tokens, keys}));
  const CacheKeys other_keys{"globex", 0};
  EXPECT_FALSE(content_matches(stored, BlockContentView{parent, 1, tokens, other_keys}));
  const std::vector<TokenId> shorter = {1, 2, 3};
  EXPECT_FALSE(content_matches(stored, BlockContentView{parent, 1, shorter, keys}));
}

}  // namespace
}  // namespace sluice::scheduler
