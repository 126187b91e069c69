// Writing new K and V rows into the paged KV cache on the CPU (contract in kernels/ops.h,
// CacheWriteArgs). Slots are validated up front; the copy runs in parallel over tokens.
//
// NOTE: slots other than -1 must be distinct within one call (two tokens writing one slot
// would race); the scheduler hands every token its own slot.

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/ops_impl.h"
#include "kernels/cpu/paged_ops.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::cpu {
namespace {

constexpr const char* kOp = "cache_write";

// Copies row t of `src` ([N, nkv, d], row-strided) into row `slot` of `cache` (contiguous).
void copy_row(const Tensor& src, int64_t t, float* cache, int64_t slot) {
  const int64_t nkv = src.dim(1), d = src.dim(2);
  const float* from = f32_data(src) + t * src.strides[0];
  float* to = cache + slot * nkv * d;
  if (src.strides[1] == d || nkv == 1) {
    std::memcpy(to, from, static_cast<size_t>(nkv * d) * sizeof(float));
    return;
  }
  for (int64_t h = 0; h < nkv; ++h) {
    std::memcpy(to + h * d, from + h * src.strides[1], static_cast<size_t>(d) * sizeof(float));
  }
}

}  // namespace

void run_cache_write(const CacheWriteArgs& args) {
  check_tensor(args.k, kOp, "k", DType::kF32, 3);
  check_tensor(args.v, kOp, "v", DType::kF32, 3);
  check_tensor(args.k_cache, kOp, "k_cache", DType::kF32, 3);
  check_tensor(args.v_cache, kOp, "v_cache", DType::kF32, 3);
  check_tensor(args.slots, kOp, "slots", DType::kI32, 1);
  check_contiguous(args.k_cache, kOp, "k_cache");
  check_contiguous(args.v_cache, kOp, "v_cache");
  check_same_shape(args.k, args.v, kOp, "k", "v");
  check_same_shape(args.k_cache, args.v_cache, kOp, "k_cache", "v_cache");
  const int64_t n = args.k.dim(0);
  const int64_t num_slots = args.k_cache.dim(0);
  check_dim(args.k_cache, 1, args.k.dim(1), kOp, "k_cache");
  check_dim(args.k_cache, 2, args.k.dim(2), kOp, "k_cache");
  check_dim(args.slots, 0, n, kOp, "slots");
  const int32_t* slots = args.slots.ptr<int32_t>();
  for (int64_t t = 0; t < n; ++t) {
    SLUICE_CHECK(slots[t] >= -1 && slots[t] < num_slots,
                 "{}: slots[{}] = {} is outside [-1, {}) (the cache has {} slots)", kOp, t,
                 slots[t], num_slots, num_slots);
  }
  const int64_t row = args.k.dim(1) * args.k.dim(2);
  if (n == 0 || row == 0) return;
  float* k_cache = f32_data(args.k_cache);
  float* v_cache = f32_data(args.v_cache);
  parallel_for(
      n,
      [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          if (slots[t] < 0) continue;
          copy_row(args.k, t, k_cache, slots[t]);
          copy_row(args.v, t, v_cache, slots[t]);
        }
      },
      std::max<int64_t>(1, kMinElementsPerTask / (2 * row)));
}

}  // namespace sluice::kernels::cpu
