// quant_matmul: GEMVs and small batches on ggml-quantized weights (kernels/cpu/quant_matmul.h)
// per block type and kernel path. Bytes processed are the quantized weight bytes read, so
// GB/s compares with matmul_bench's read_baseline and f32/bf16 figures. Shapes are Gemma 3
// 270M's: the 262144 x 640 tied head (Q8_0 in the Q4_K_M file), 2048 x 640 (up/gate, Q5_0)
// and 640 x 2048 (down, Q4_K / Q6_K).
//
//   kernels_bench --benchmark_filter='quant_matmul/gemv'

#include <cstring>
#include <map>
#include <memory>
#include <tuple>

#include "bench_util.h"
#include "kernels/cpu/quant_matmul.h"

namespace sluice::kernels::bench {
namespace {

using cpu::QuantKernels;
using cpu::QuantMatrix;
using cpu::QuantType;

// Random blocks with finite f16 scales, made once per (type, shape) and kept.
const std::vector<uint8_t>& blocks(QuantType t, int64_t N, int64_t K) {
  static std::map<std::tuple<int, int64_t, int64_t>, std::unique_ptr<std::vector<uint8_t>>> cache;
  auto& slot = cache[{static_cast<int>(t), N, K}];
  if (slot) return *slot;
  const int64_t bb = cpu::quant_block_bytes(t);
  const int64_t nblocks = N * K / cpu::quant_block_elems(t);
  slot = std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(nblocks * bb));
  uint64_t s = 12345;
  for (uint8_t& b : *slot) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<uint8_t>(s >> 56);
  }
  const uint16_t scale = f32_to_f16(0.01f);
  for (int64_t i = 0; i < nblocks; ++i) {
    uint8_t* b = slot->data() + i * bb;
    const int at = t == QuantType::kQ6_K ? 208 : 0;
    std::memcpy(b + at, &scale, 2);
    if (t == QuantType::kQ4_1 || t == QuantType::kQ5_1 || t == QuantType::kQ4_K ||
        t == QuantType::kQ5_K) {
      std::memcpy(b + 2, &scale, 2);
    }
  }
  return *slot;
}

void bm_quant_matmul(benchmark::State& state, const QuantKernels* kern, QuantType t, int64_t M,
                     int64_t N, int64_t K) {
  ScopedThreads threads(static_cast<int>(state.range(0)));
  const std::vector<uint8_t>& w = blocks(t, N, K);
  const QuantMatrix qm{w.data(), t, N, K, cpu::quant_row_bytes(t, K)};
  std::vector<float> a = random_floats(M * K, 2);
  std::vector<float> out(M * N);
  for (auto _ : state) {
    cpu::quant_matmul(*kern, a.data(), K, M, qm, out.data(), N);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * static_cast<double>(w.size())));
  set_flops(state, 2.0 * M * N * K);
  state.counters["threads"] = cpu::num_threads();
}

int register_all() {
  struct Shape {
    const char* name;
    int64_t M, N, K;
  };
  const Shape shapes[] = {
      {"gemv_head", 1, 262144, 640},   {"batch4_head", 4, 262144, 640},
      {"batch16_head", 16, 262144, 640},
      {"gemv_mlp_up", 1, 2048, 640},
      {"gemv_mlp_down", 1, 640, 2048}, {"batch4_mlp_up", 4, 2048, 640},
      {"batch16_mlp_up", 16, 2048, 640}, {"gemm128_mlp_up", 128, 2048, 640},
  };
  const QuantType types[] = {QuantType::kQ4_0, QuantType::kQ4_1, QuantType::kQ5_0,
                             QuantType::kQ5_1, QuantType::kQ8_0, QuantType::kQ4_K,
                             QuantType::kQ5_K, QuantType::kQ6_K};
  for (const Shape& s : shapes) {
    for (QuantType t : types) {
      if (s.K % cpu::quant_block_elems(t) != 0) continue;
      for (const QuantKernels* kern : cpu::supported_quant_kernels()) {
        const std::string name = std::string("quant_matmul/") + s.name + "/" + std::to_string(s.M) +
                                 "x" + std::to_string(s.N) + "x" + std::to_string(s.K) + "/" +
                                 cpu::quant_type_name(t) + "/" + kern->name;
        benchmark::RegisterBenchmark((name + "/threads:1").c_str(), bm_quant_matmul, kern, t, s.M,
                                     s.N, s.K)
            ->Arg(1)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((name + "/threads:all").c_str(), bm_quant_matmul, kern, t,
                                     s.M, s.N, s.K)
            ->Arg(0)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
  }
  return 0;
}

const int registered = register_all();

}  // namespace
}  // namespace sluice::kernels::bench
