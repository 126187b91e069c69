#pragma once
// Distinct id types so that a token id cannot be passed where a block id belongs.

#include <cstdint>
#include <functional>

namespace sluice {

template <typename Tag, typename Rep>
struct StrongId {
  Rep value{};
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep v) : value(v) {}
  constexpr auto operator<=>(const StrongId&) const = default;
};

struct RequestIdTag {};
struct BlockIdTag {};
using RequestId = StrongId<RequestIdTag, uint64_t>;
using BlockId = StrongId<BlockIdTag, int32_t>;

// Token ids stay a plain int32 (they cross into kernels as int32 tensors), but are named.
using TokenId = int32_t;

}  // namespace sluice

template <typename Tag, typename Rep>
struct std::hash<sluice::StrongId<Tag, Rep>> {
  size_t operator()(const sluice::StrongId<Tag, Rep>& id) const noexcept {
    return std::hash<Rep>{}(id.value);
  }
};
