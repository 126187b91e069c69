// matmul: decode GEMVs (M = 1, bandwidth bound: GB/s of weights read), small decode
// batches, and prefill GEMMs (FLOP/s), per ISA and weight dtype, next to a read-bandwidth
// baseline over the same buffer. Shapes are Gemma 3 270M's: the 262144 x 640 tied output
// head, the 2048 x 640 MLP projections, and 640 x 2048 (down projection). bf16_dot/...: the
// same shapes through the AVX512_BF16 dot product of the CPU fast path.

#include <map>
#include <string_view>
#include <memory>
#include <tuple>

#include "bench_util.h"
#include "kernels/cpu/bf16_matmul.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::bench {
namespace {

// One weight matrix in all three dtypes, built on first use and kept for the whole run.
struct WeightSet {
  std::vector<float> f32;
  std::vector<uint16_t> bf16, f16;
  void* data(DType dtype) {
    if (dtype == DType::kF32) return f32.data();
    return dtype == DType::kBF16 ? bf16.data() : f16.data();
  }
};

WeightSet& weights(int64_t N, int64_t K, DType dtype) {
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<WeightSet>> cache;
  auto& slot = cache[{N, K}];
  if (!slot) slot = std::make_unique<WeightSet>();
  WeightSet& w = *slot;
  if (dtype == DType::kF32 && w.f32.empty()) w.f32 = random_floats(N * K, 1);
  if (dtype != DType::kF32 && w.bf16.empty()) {
    std::vector<float> v = random_floats(N * K, 1);
    w.bf16 = to_bf16_bits(v);
    w.f16 = to_f16_bits(v);
  }
  return w;
}

// state.range(0): threads (0 = all). Single-threaded runs report rates per CPU second, which
// stay meaningful on a machine shared with other work; multi-threaded runs use real time.
void bm_matmul(benchmark::State& state, CpuIsa isa, DType dtype, int64_t M, int64_t N, int64_t K) {
  const OpTable* ops = ops_or_skip(state, isa);
  if (ops == nullptr) return;
  ScopedThreads threads(static_cast<int>(state.range(0)));
  WeightSet& w = weights(N, K, dtype);
  std::vector<float> a = random_floats(M * K, 2);
  std::vector<float> out(M * N);
  MatmulArgs args;
  args.a = Tensor::make(a.data(), DType::kF32, {M, K});
  args.w = Tensor::make(w.data(dtype), dtype, {N, K});
  args.out = Tensor::make(out.data(), DType::kF32, {M, N});
  for (auto _ : state) {
    ops->matmul(args);
    benchmark::ClobberMemory();
  }
  const double weight_bytes = static_cast<double>(N * K) * dtype_size(dtype);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * weight_bytes));
  set_flops(state, 2.0 * M * N * K);
  state.counters["threads"] = cpu::num_threads();
}

// The bf16 dot product (kernels/cpu/bf16_matmul.h: bf16 activations, vdpbf16ps) on the same
// bf16 weights, per kernel table: compare with matmul/.../bf16/avx512 (f32 activations).
void bm_bf16_dot(benchmark::State& state, const cpu::Bf16Kernels* kern, int64_t M, int64_t N,
                 int64_t K) {
  ScopedThreads threads(static_cast<int>(state.range(0)));
  WeightSet& w = weights(N, K, DType::kBF16);
  std::vector<float> a = random_floats(M * K, 2);
  std::vector<float> out(M * N);
  for (auto _ : state) {
    cpu::bf16_matmul(*kern, a.data(), K, M, w.bf16.data(), N, K, out.data(), N);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 2.0 * N * K));
  set_flops(state, 2.0 * M * N * K);
  state.counters["threads"] = cpu::num_threads();
}

// Read bandwidth of the same f32 buffer: every thread sums its slice (the kernels' own
// dot product of a slice with itself, so each byte comes from memory once).
void bm_read_baseline(benchmark::State& state, int64_t N, int64_t K) {
  WeightSet& w = weights(N, K, DType::kF32);
  const cpu::IsaKernels& kern = cpu::isa_kernels(cpu::active_isa());
  const float* data = w.f32.data();
  const int64_t n = N * K;
  float sink[256] = {};
  for (auto _ : state) {
    cpu::parallel_for(cpu::num_threads(), [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t lo = n * t / cpu::num_threads(), hi = n * (t + 1) / cpu::num_threads();
        kern.dot_rows(data + lo, data + lo, 0, 1, hi - lo, &sink[t]);
      }
    });
    benchmark::DoNotOptimize(sink);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * sizeof(float)));
}

int register_all() {
  struct Shape {
    const char* name;
    int64_t M, N, K;
  };
  const Shape shapes[] = {
      {"gemv_head", 1, 262144, 640},      {"gemv_mlp_up", 1, 2048, 640},
      {"gemv_mlp_down", 1, 640, 2048},    {"batch2_mlp_up", 2, 2048, 640},
      {"batch4_mlp_up", 4, 2048, 640},
      {"batch16_mlp_up", 16, 2048, 640},  {"gemm128_mlp_up", 128, 2048, 640},
      {"gemm512_mlp_up", 512, 2048, 640}, {"gemm128_mlp_down", 128, 640, 2048},
  };
  for (const Shape& s : shapes) {
    for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
      for (CpuIsa isa : kAllIsas) {
        const std::string name = std::string("matmul/") + s.name + "/" + std::to_string(s.M) + "x" +
                                 std::to_string(s.N) + "x" + std::to_string(s.K) + "/" +
                                 dtype_name(dtype) + "/" + cpu::isa_name(isa);
        benchmark::RegisterBenchmark((name + "/threads:1").c_str(), bm_matmul, isa, dtype, s.M, s.N,
                                     s.K)
            ->Arg(1)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((name + "/threads:all").c_str(), bm_matmul, isa, dtype, s.M,
                                     s.N, s.K)
            ->Arg(0)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
  }
  for (const Shape& s : shapes) {
    for (const cpu::Bf16Kernels* kern : cpu::supported_bf16_kernels()) {
      if (std::string_view(kern->name) == "scalar" && s.M > 16) continue;  // minutes each
      const std::string name = std::string("bf16_dot/") + s.name + "/" + std::to_string(s.M) + "x" +
                               std::to_string(s.N) + "x" + std::to_string(s.K) + "/" + kern->name;
      benchmark::RegisterBenchmark((name + "/threads:1").c_str(), bm_bf16_dot, kern, s.M, s.N, s.K)
          ->Arg(1)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark((name + "/threads:all").c_str(), bm_bf16_dot, kern, s.M, s.N, s.K)
          ->Arg(0)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::RegisterBenchmark("read_baseline/262144x640/f32", bm_read_baseline, 262144, 640)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("read_baseline/2048x640/f32", bm_read_baseline, 2048, 640)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  return 0;
}

const int registered = register_all();

}  // namespace
}  // namespace sluice::kernels::bench
