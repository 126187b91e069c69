#pragma once
// Shared set-up for the kernel micro-benchmarks: large random buffers made once and
// reused, and the registration of one benchmark per supported ISA.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/half.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::bench {

using cpu::CpuIsa;

inline constexpr CpuIsa kAllIsas[] = {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512};

// n pseudo-random floats in [-1, 1) (a fast LCG: the big weight matrices have 168M values).
inline std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<int32_t>(s >> 32)) * (1.0f / 2147483648.0f);
  }
  return v;
}

inline std::vector<uint16_t> to_bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

inline std::vector<uint16_t> to_f16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_f16(v[i]);
  return out;
}

// Skips the benchmark (with a message) when this CPU cannot run `isa`; else its op table.
inline const OpTable* ops_or_skip(benchmark::State& state, CpuIsa isa) {
  if (!cpu::isa_supported(isa)) {
    state.SkipWithError((std::string("this CPU cannot run ") + cpu::isa_name(isa)).c_str());
    return nullptr;
  }
  return &cpu::cpu_ops_for_isa(isa);
}

// Sets the process-wide pool to n threads (0 = all) for the lifetime of the object.
class ScopedThreads {
 public:
  explicit ScopedThreads(int n) { cpu::set_num_threads(n); }
  ~ScopedThreads() { cpu::set_num_threads(0); }
};

inline void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOP/s"] = benchmark::Counter(
      flops_per_iteration * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace sluice::kernels::bench
