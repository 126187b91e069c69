// Rotary position embedding on the CPU (contract in kernels/ops.h, RopeArgs).
//
// Angles follow Hugging Face's f32 arithmetic: inv_freq_i = 1 / theta^(2i / freq_dim) rounded
// to f32, angle = f32(position) * f32(inv_freq_i * freq_scale), then cos and sin of that f32
// angle. One cos/sin table per token serves all of its heads.

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/ops_impl.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::cpu {

void run_rope(const RopeArgs& args) {
  constexpr const char* op = "rope";
  check_tensor(args.x, op, "x", DType::kF32, 3);
  check_tensor(args.positions, op, "positions", DType::kI32, 1);
  const int64_t T = args.x.dim(0);
  const int64_t H = args.x.dim(1);
  const int64_t D = args.x.dim(2);
  check_dim(args.positions, 0, T, op, "positions");
  const int64_t num_pairs = args.num_pairs;
  const int64_t offset = args.pair_offset;
  SLUICE_CHECK(num_pairs >= 0 && offset >= num_pairs && num_pairs + offset <= D,
               "{}: num_pairs {} and pair_offset {} do not fit head_dim {} (need num_pairs <= "
               "pair_offset and num_pairs + pair_offset <= head_dim)",
               op, num_pairs, offset, D);
  SLUICE_CHECK(args.freq_dim > 0 && args.theta > 0.0f, "{}: freq_dim {} and theta {} must be > 0",
               op, args.freq_dim, args.theta);
  if (T == 0 || H == 0 || num_pairs == 0) return;

  std::vector<float> inv_freq(num_pairs);
  for (int64_t i = 0; i < num_pairs; ++i) {
    const float f =
        static_cast<float>(1.0 / std::pow(static_cast<double>(args.theta),
                                          2.0 * static_cast<double>(i) / args.freq_dim));
    inv_freq[i] = f * args.freq_scale;
  }
  const int32_t* positions = args.positions.ptr<int32_t>();
  float* x = f32_data(args.x);
  const int64_t s0 = args.x.strides[0], s1 = args.x.strides[1];
  parallel_for(
      T,
      [&](int64_t begin, int64_t end) {
        float* cos_sin = scratch_floats(0, static_cast<size_t>(2 * num_pairs));
        float* cosv = cos_sin;
        float* sinv = cos_sin + num_pairs;
        for (int64_t t = begin; t < end; ++t) {
          const float pos = static_cast<float>(positions[t]);
          for (int64_t i = 0; i < num_pairs; ++i) {
            const float angle = pos * inv_freq[i];
            cosv[i] = std::cos(angle);
            sinv[i] = std::sin(angle);
          }
          for (int64_t h = 0; h < H; ++h) {
            float* lo = x + t * s0 + h * s1;
            float* hi = lo + offset;
            for (int64_t i = 0; i < num_pairs; ++i) {
              const float x1 = lo[i], x2 = hi[i];
              lo[i] = x1 * cosv[i] - x2 * sinv[i];
              hi[i] = x2 * cosv[i] + x1 * sinv[i];
            }
          }
        }
      },
      std::max<int64_t>(1, kMinElementsPerTask / (H * num_pairs * 2 + 32 * num_pairs)));
}

}  // namespace sluice::kernels::cpu
