// cache_write: each token's K and V rows land in its slot (row-strided sources, several
// heads, -1 skips), every other slot is untouched, and a bad slot aborts naming it.

#include <algorithm>
#include <numeric>
#include <random>

#include "kernel_test_util.h"

namespace sluice::kernels::testing {
namespace {

struct Shape {
  int64_t n, nkv, d, num_slots;
};

// k and v are views into fused [n, (nq + 2 nkv) d + pad] rows; slots are distinct and random,
// with every third token skipped (-1).
void check_write(const Shape& s, uint32_t seed) {
  const int64_t row = s.nkv * s.d, fused = (2 + 2 * s.nkv) * s.d + 3;
  std::vector<float> qkv = random_floats(static_cast<size_t>(s.n * fused), seed);
  std::vector<int32_t> all(static_cast<size_t>(s.num_slots));
  std::iota(all.begin(), all.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<int32_t> slots(all.begin(), all.begin() + s.n);
  for (int64_t t = 0; t < s.n; t += 3) slots[t] = -1;
  std::vector<float> k_cache(static_cast<size_t>(s.num_slots * row), -1.0f);
  std::vector<float> v_cache(k_cache.size(), -2.0f);
  CacheWriteArgs args;
  args.k = strided(qkv.data() + 2 * s.d, DType::kF32, {s.n, s.nkv, s.d}, {fused, s.d, 1});
  args.v = strided(qkv.data() + 2 * s.d + row, DType::kF32, {s.n, s.nkv, s.d}, {fused, s.d, 1});
  args.k_cache = Tensor::make(k_cache.data(), DType::kF32, {s.num_slots, s.nkv, s.d});
  args.v_cache = Tensor::make(v_cache.data(), DType::kF32, {s.num_slots, s.nkv, s.d});
  args.slots = Tensor::make(slots.data(), DType::kI32, {s.n});
  cpu_ops().cache_write(args);

  std::vector<int64_t> source(static_cast<size_t>(s.num_slots), -1);  // token per slot
  for (int64_t t = 0; t < s.n; ++t) {
    if (slots[t] >= 0) source[slots[t]] = t;
  }
  for (int64_t slot = 0; slot < s.num_slots; ++slot) {
    for (int64_t i = 0; i < row; ++i) {
      const int64_t t = source[slot];
      const float want_k = t < 0 ? -1.0f : qkv[t * fused + 2 * s.d + i];
      const float want_v = t < 0 ? -2.0f : qkv[t * fused + 2 * s.d + row + i];
      ASSERT_EQ(k_cache[slot * row + i], want_k) << "slot " << slot << " element " << i;
      ASSERT_EQ(v_cache[slot * row + i], want_v) << "slot " << slot << " element " << i;
    }
  }
}

TEST(CacheWriteTest, RowsLandInTheirSlots) {
  check_write({1, 1, 256, 64}, 1);     // a decode
  check_write({7, 2, 32, 48}, 2);      // a prefill chunk
  check_write({300, 1, 256, 512}, 3);  // enough rows for several threads
  check_write({40, 4, 64, 40}, 4);     // every slot taken (or skipped)
}

TEST(CacheWriteTest, ContiguousSourcesAndNothingToDo) {
  const int64_t n = 5, nkv = 2, d = 4, num_slots = 8;
  std::vector<float> k = random_floats(n * nkv * d, 5), v = random_floats(n * nkv * d, 6);
  std::vector<float> k_cache(num_slots * nkv * d, 0.0f), v_cache(k_cache.size(), 0.0f);
  std::vector<int32_t> slots = {7, -1, 0, 3, -1};
  CacheWriteArgs args;
  args.k = Tensor::make(k.data(), DType::kF32, {n, nkv, d});
  args.v = Tensor::make(v.data(), DType::kF32, {n, nkv, d});
  args.k_cache = Tensor::make(k_cache.data(), DType::kF32, {num_slots, nkv, d});
  args.v_cache = Tensor::make(v_cache.data(), DType::kF32, {num_slots, nkv, d});
  args.slots = Tensor::make(slots.data(), DType::kI32, {n});
  cpu_ops().cache_write(args);
  for (int64_t t = 0; t < n; ++t) {
    if (slots[t] < 0) continue;
    for (int64_t i = 0; i < nkv * d; ++i) {
      EXPECT_EQ(k_cache[slots[t] * nkv * d + i], k[t * nkv * d + i]);
      EXPECT_EQ(v_cache[slots[t] * nkv * d + i], v[t * nkv * d + i]);
    }
  }
  EXPECT_EQ(std::count(k_cache.begin(), k_cache.end(), 0.0f), (num_slots - 3) * nkv * d);
  args.k = args.k.slice_rows(0, 0);
  args.v = args.v.slice_rows(0, 0);
  args.slots = args.slots.slice_rows(0, 0);
  cpu_ops().cache_write(args);  // no tokens: nothing happens
}

TEST(CacheWriteDeathTest, RejectsBadSlotsAndShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> buf(64), cache(8 * 8);
  std::vector<int32_t> slots = {1, 8};
  CacheWriteArgs args;
  args.k = Tensor::make(buf.data(), DType::kF32, {2, 2, 4});
  args.v = Tensor::make(buf.data(), DType::kF32, {2, 2, 4});
  args.k_cache = Tensor::make(cache.data(), DType::kF32, {8, 2, 4});
  args.v_cache = Tensor::make(cache.data(), DType::kF32, {8, 2, 4});
  args.slots = Tensor::make(slots.data(), DType::kI32, {2});
  EXPECT_DEATH(cpu_ops().cache_write(args), "cache_write: slots\\[1\\] = 8 is outside \\[-1, 8\\)");
  slots[1] = -2;
  EXPECT_DEATH(cpu_ops().cache_write(args), "cache_write: slots\\[1\\] = -2 is outside");
  slots[1] = 2;
  args.v_cache = Tensor::make(cache.data(), DType::kF32, {4, 4, 4});
  EXPECT_DEATH(cpu_ops().cache_write(args), "cache_write: k_cache has shape \\[8, 2, 4\\]");
}

}  // namespace
}  // namespace sluice::kernels::testing
