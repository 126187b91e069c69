#pragma once
// Overflow-checked size arithmetic. Every count, size and offset read from a file or a
// client goes through these before it is used to allocate or index (RELIABILITY.md, E23).
// Each returns std::nullopt on overflow instead of wrapping.

#include <cstdint>
#include <initializer_list>
#include <optional>

namespace sluice {

inline std::optional<uint64_t> checked_add(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Product of all factors, or nullopt if it overflows.
inline std::optional<uint64_t> checked_product(std::initializer_list<uint64_t> factors) {
  uint64_t r = 1;
  for (uint64_t f : factors) {
    if (__builtin_mul_overflow(r, f, &r)) return std::nullopt;
  }
  return r;
}

// Rounds `value` up to a multiple of `alignment` (> 0), or nullopt on overflow.
inline std::optional<uint64_t> checked_align_up(uint64_t value, uint64_t alignment) {
  if (alignment == 0) return std::nullopt;
  uint64_t rem = value % alignment;
  if (rem == 0) return value;
  return checked_add(value, alignment - rem);
}

// True when [offset, offset + size) lies inside [0, limit) without overflow.
inline bool range_within(uint64_t offset, uint64_t size, uint64_t limit) {
  auto end = checked_add(offset, size);
  return end && *end <= limit;
}

}  // namespace sluice
