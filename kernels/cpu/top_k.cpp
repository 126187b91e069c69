// top_k on the CPU (contract in kernels/ops.h, TopKArgs): one pass keeping the best k seen so
// far in a heap whose root is the worst of them, then a sort of those k. O(D log k).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/ops_impl.h"

namespace sluice::kernels::cpu {
namespace {

struct Candidate {
  float value;
  int32_t index;
};

// The ranking order: larger value first, NaN below everything, ties to the lower index.
bool ranks_before(const Candidate& a, const Candidate& b) {
  const bool a_nan = std::isnan(a.value), b_nan = std::isnan(b.value);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && a.value != b.value) return a.value > b.value;
  return a.index < b.index;
}

}  // namespace

void run_top_k(const TopKArgs& args) {
  constexpr const char* op = "top_k";
  check_tensor(args.values, op, "values", DType::kF32, 1);
  const int64_t D = args.values.dim(0);
  const int64_t k = args.k;
  SLUICE_CHECK(k >= 0 && k <= D, "{}: k = {} must be in [0, {}] (the number of values)", op, k, D);
  SLUICE_CHECK(D <= INT32_MAX, "{}: {} values do not fit i32 indices", op, D);
  if (k == 0) return;  // the outputs may be empty (undefined) views
  check_tensor(args.out_indices, op, "out_indices", DType::kI32, 1);
  check_tensor(args.out_values, op, "out_values", DType::kF32, 1);
  check_dim(args.out_indices, 0, k, op, "out_indices");
  check_dim(args.out_values, 0, k, op, "out_values");
  const float* values = f32_data(args.values);
  std::vector<Candidate> heap;
  heap.reserve(k);
  // std heap with ranks_before as "less" keeps the candidate ranking last at the front.
  for (int64_t i = 0; i < D; ++i) {
    const Candidate c{values[i], static_cast<int32_t>(i)};
    if (static_cast<int64_t>(heap.size()) < k) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), ranks_before);
      continue;
    }
    // Fast reject: most values are below the worst kept one (NaN fails the comparison too).
    // Only exact ties and a NaN among the kept ones need the full order.
    const float worst = heap.front().value;
    if (!std::isnan(worst) && !(c.value >= worst)) continue;
    if (ranks_before(c, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), ranks_before);
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end(), ranks_before);
    }
  }
  std::sort(heap.begin(), heap.end(), ranks_before);
  int32_t* out_indices = args.out_indices.ptr<int32_t>();
  float* out_values = f32_data(args.out_values);
  for (int64_t i = 0; i < k; ++i) {
    out_indices[i] = heap[i].index;
    out_values[i] = heap[i].value;
  }
}

}  // namespace sluice::kernels::cpu
