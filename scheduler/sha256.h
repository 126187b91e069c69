#pragma once
// SHA-256 (FIPS 180-4), small and dependency-free. The prefix cache names a KV block by the
// SHA-256 of its content chain (block_hash.h), so that two different prefixes never share a
// block by accident: with a 256-bit digest a collision is not a practical risk.
//
// Streaming use: `Sha256 h; h.update(a); h.update(b); Sha256Digest d = h.finish();`.
// One-shot: `sha256(bytes)`. Not thread-safe per object; independent objects are.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sluice::scheduler {

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();

  // Appends bytes to the message. May be called any number of times before finish().
  void update(std::span<const uint8_t> bytes);
  void update(std::string_view bytes);
  // Appends the little-endian bytes of an integer (a fixed-width, unambiguous encoding).
  void update_u32(uint32_t v);
  void update_u64(uint64_t v);

  // Pads, returns the digest, and resets the object to the empty message.
  Sha256Digest finish();

 private:
  void compress(const uint8_t* block);  // one 64-byte block into state_

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffer_len_ = 0;   // bytes waiting in buffer_, < 64
  uint64_t total_len_ = 0;  // message length so far, bytes
};

Sha256Digest sha256(std::string_view bytes);
Sha256Digest sha256(std::span<const uint8_t> bytes);

// Lowercase hex, 64 characters.
std::string to_hex(const Sha256Digest& digest);

}  // namespace sluice::scheduler
