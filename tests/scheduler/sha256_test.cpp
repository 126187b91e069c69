#include "scheduler/sha256.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::scheduler {
namespace {

// FIPS 180-2 appendix B and NIST CAVP known answers.
TEST(Sha256, KnownAnswerVectors) {
  EXPECT_EQ(to_hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(to_hex(sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                          "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(to_hex(sha256("The quick brown fox jumps over the lazy dog")),
            "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592");
}

TEST(Sha256, OneMillionA) {
  Sha256 h;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) h.update(chunk);
  EXPECT_EQ(to_hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> m(n);
  for (size_t i = 0; i < n; ++i) m[i] = static_cast<uint8_t>((i * 7 + 3) % 256);
  return m;
}

// Lengths around the padding boundaries (55/56 bytes fit one or two padded blocks), checked
// against Python's hashlib.
TEST(Sha256, PaddingBoundaries) {
  const std::vector<std::pair<size_t, std::string>> cases = {
      {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
      {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
      {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
      {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
      {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
      {119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"},
      {120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"},
      {127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07"},
      {128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"},
  };
  for (const auto& [n, want] : cases) {
    EXPECT_EQ(to_hex(sha256(std::span<const uint8_t>(pattern(n)))), want) << "length " << n;
  }
}

TEST(Sha256, IncrementalEqualsOneShotAtEverySplit) {
  const std::vector<uint8_t> m = pattern(130);
  const Sha256Digest want = sha256(std::span<const uint8_t>(m));
  for (size_t a = 0; a <= m.size(); a += 3) {
    for (size_t b = a; b <= m.size(); b += 17) {
      Sha256 h;
      h.update(std::span<const uint8_t>(m.data(), a));
      h.update(std::span<const uint8_t>(m.data() + a, b - a));
      h.update(std::span<const uint8_t>(m.data() + b, m.size() - b));
      ASSERT_EQ(h.finish(), want) << "split at " << a << ", " << b;
    }
  }
}

TEST(Sha256, FinishResetsAndIntegersAreLittleEndian) {
  Sha256 h;
  h.update("abc");
  (void)h.finish();
  h.update("abc");
  EXPECT_EQ(to_hex(h.finish()), to_hex(sha256("abc")));

  h.update_u32(0x64636261u);  // "abcd" in little-endian byte order
  EXPECT_EQ(h.finish(), sha256("abcd"));
  h.update_u64(0x6867666564636261ull);
  EXPECT_EQ(h.finish(), sha256("abcdefgh"));
}

}  // namespace
}  // namespace sluice::scheduler
