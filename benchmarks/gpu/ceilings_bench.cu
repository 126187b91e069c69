// The device's two ceilings and how close the decode-shaped matmuls come to them.
//
//  1. Memory: a device-to-device cudaMemcpyAsync of a 2 GiB buffer and a plain copy kernel
//     (16 bytes per thread), counting bytes read plus written. The faster is the bandwidth
//     ceiling.
//  2. Arithmetic: a bf16 8192 x 8192 x 8192 matmul through our cuBLASLt path (f32
//     accumulation, bf16 output) on random data: the matrix-rate ceiling.
//  3. Decode: our matmul() at M = 1, 4, 8, 16, 64, 256 rows (gemv = 1: the decode-shaped
//     kernel of gemv.cu ran, else cuBLASLt) against the weight shapes of Gemma 4
//     26B-A4B and 31B (QKV, O, fused gate/up, down, vocabulary head). Each is timed as a replayed
//     CUDA graph (how the engine runs decode) and launched one by one from the host; the
//     report gives ms per matmul, weight GB/s and its fraction of the copy ceiling, TFLOP/s
//     and its fraction of the matmul ceiling.
//
// Weights smaller than a few L2s are rotated among copies, so each matmul reads its weight
// from device memory, as a model's layers do. All inputs are uniform random (fill_uniform).

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/matmul.h"

namespace sluice::bench {
namespace {

// Uniform bf16 in [-1, 1) over the whole buffer (an even byte count).
void fill_random(const DeviceBuffer& b, uint64_t seed, cudaStream_t stream) {
  b.fill_uniform(DType::kBF16, seed, -1.0f, 1.0f, stream);
}

__global__ void copy16_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = src[i];
}

constexpr int kCopyThreads = 256;

struct Ceilings {
  double copy_gb_per_s = 0;
  double gemm_tflops = 0;
};

// Sets ceilings.copy_gb_per_s to the faster of the two copies.
void bench_copy(const BenchArgs& args, cudaStream_t stream, Report& report, Ceilings& ceilings) {
  const size_t bytes = args.quick ? (size_t{512} << 20) : (size_t{2} << 30);
  const int reps = args.quick ? 5 : 10;
  const double memcpy_ms = time_copy(bytes, stream, reps).ms;

  DeviceBuffer src(bytes), dst(bytes);
  fill_random(src, 1, stream);
  const auto* from = static_cast<const uint4*>(src.data());
  auto* to = static_cast<uint4*>(dst.data());
  const int64_t n = static_cast<int64_t>(bytes / 16);
  const auto blocks = static_cast<unsigned>((n + kCopyThreads - 1) / kCopyThreads);
  const double kernel_ms = median_ms(
      [=](cudaStream_t s) {
        copy16_kernel<<<blocks, kCopyThreads, 0, s>>>(from, to, n);
        SLUICE_CUDA_CHECK(cudaGetLastError());
      },
      stream, 2, reps);
  const double moved_gb = 2.0 * static_cast<double>(bytes) / 1e9;  // read + written
  const double bytes_mib = static_cast<double>(bytes >> 20);
  for (const auto& [name, ms] : {std::pair{"copy/cudaMemcpyAsync", memcpy_ms},
                                 std::pair{"copy/kernel_16B_per_thread", kernel_ms}}) {
    const double gb_per_s = moved_gb / (ms / 1e3);
    report.add({name, {{"MiB", bytes_mib}}, {{"ms", ms}, {"gb_per_s", gb_per_s}}});
    ceilings.copy_gb_per_s = std::max(ceilings.copy_gb_per_s, gb_per_s);
  }
}

void bench_gemm(const BenchArgs& args, cudaStream_t stream, Report& report, Ceilings& ceilings) {
  constexpr int64_t kSize = 8192;
  const size_t bytes = static_cast<size_t>(kSize * kSize) * 2;
  DeviceBuffer a(bytes), w(bytes), out(bytes);
  fill_random(a, 3, stream);
  fill_random(w, 4, stream);
  const kernels::MatmulArgs m{out.view(DType::kBF16, {kSize, kSize}),
                              a.view(DType::kBF16, {kSize, kSize}),
                              w.view(DType::kBF16, {kSize, kSize})};
  const double ms =
      median_ms([&](cudaStream_t s) { kc::matmul(m, s); }, stream, 3, args.quick ? 5 : 10);
  const double flop = 2.0 * kSize * kSize * kSize;
  ceilings.gemm_tflops = flop / (ms / 1e3) / 1e12;
  report.add({"gemm/bf16_8192^3",
              {{"M", kSize}, {"N", kSize}, {"K", kSize}},
              {{"ms", ms}, {"tflops", ceilings.gemm_tflops}}});
}

// One weight of the decode benchmark: w [n, k] bf16, out in `out_type`.
struct WeightCase {
  const char* name;
  int64_t n, k;
  DType out_type;
};

// Gemma 4 26B-A4B (hidden 2816, feed-forward 2112) and 31B (hidden 5376, feed-forward
// 21504); gate and up projections fused into one weight; logits in f32.
constexpr WeightCase kWeightCases[] = {
    {"26b_qkv_sliding", (16 + 2 * 8) * 256, 2816, DType::kBF16},
    {"26b_o_global", 2816, 16 * 512, DType::kF32},
    {"26b_gate_up", 2 * 2112, 2816, DType::kBF16},
    {"26b_down", 2816, 2112, DType::kBF16},
    {"31b_gate_up", 2 * 21504, 5376, DType::kBF16},
    {"31b_down", 5376, 21504, DType::kBF16},
    {"26b_lm_head", 262144, 2816, DType::kF32},
    {"31b_lm_head", 262144, 5376, DType::kF32},
};
constexpr int64_t kDecodeRows[] = {1, 4, 8, 16, 64, 256};
constexpr int64_t kMaxRows = 256;

void bench_decode(const BenchArgs& args, cudaStream_t stream, Report& report,
                  const Ceilings& ceilings) {
  const int reps = args.quick ? 5 : 20;
  const size_t rotate_bytes = 4 * l2_bytes();
  for (const WeightCase& wc : kWeightCases) {
    const size_t w_bytes = static_cast<size_t>(wc.n * wc.k) * 2;
    // Enough copies that one pass over them is 4 L2s: each matmul reads its weight from
    // device memory. At most 32 (tiny weights would otherwise need hundreds).
    const int copies =
        static_cast<int>(std::clamp<size_t>((rotate_bytes + w_bytes - 1) / w_bytes, 1, 32));
    std::vector<DeviceBuffer> weights;
    for (int c = 0; c < copies; ++c) {
      weights.emplace_back(w_bytes);
      fill_random(weights.back(), 100 + c, stream);
    }
    DeviceBuffer a(static_cast<size_t>(kMaxRows * wc.k) * 2);
    fill_random(a, 99, stream);
    DeviceBuffer out(static_cast<size_t>(kMaxRows * wc.n) * kernels::dtype_size(wc.out_type));
    const Tensor a_all = a.view(DType::kBF16, {kMaxRows, wc.k});
    const Tensor out_all = out.view(wc.out_type, {kMaxRows, wc.n});

    for (int64_t M : kDecodeRows) {
      const auto enqueue = [&](cudaStream_t s) {
        for (int c = 0; c < copies; ++c) {
          kc::matmul({out_all.slice_rows(0, M), a_all.slice_rows(0, M),
                      weights[c].view(DType::kBF16, {wc.n, wc.k})},
                     s);
        }
      };
      // Eager first: warms the algorithm cache, so the capture below allocates nothing.
      const double eager_ms = median_ms(enqueue, stream, 2, reps) / copies;
      const double ms = graph_median_ms(enqueue, stream, 2, reps) / copies;

      const double w_gb_per_s = static_cast<double>(w_bytes) / 1e9 / (ms / 1e3);
      const double io_bytes = static_cast<double>(w_bytes) + static_cast<double>(M * wc.k) * 2 +
                              static_cast<double>(M * wc.n * kernels::dtype_size(wc.out_type));
      const double tflops = 2.0 * M * wc.n * wc.k / (ms / 1e3) / 1e12;
      report.add({std::string("decode/") + wc.name + "/" + kernels::dtype_name(wc.out_type),
                  {{"M", static_cast<double>(M)},
                   {"N", static_cast<double>(wc.n)},
                   {"K", static_cast<double>(wc.k)},
                   {"gemv", kc::matmul_uses_gemv({out_all.slice_rows(0, M), a_all.slice_rows(0, M),
                                                  weights[0].view(DType::kBF16, {wc.n, wc.k})})
                                ? 1.0
                                : 0.0}},
                  {{"ms", ms},
                   {"eager_ms", eager_ms},
                   {"w_gb_per_s", w_gb_per_s},
                   {"frac_copy_bw", w_gb_per_s / ceilings.copy_gb_per_s},
                   {"io_gb_per_s", io_bytes / 1e9 / (ms / 1e3)},
                   {"tflops", tflops},
                   {"frac_gemm", tflops / ceilings.gemm_tflops}}});
    }
  }
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  using namespace sluice::bench;
  const Session session(argc, argv);
  if (const sluice::Status blas = sluice::kernels::cuda::init_blas(); !blas.is_ok()) {
    std::fprintf(stderr, "gpu_ceilings_bench: %s\n", blas.to_string().c_str());
    return 1;
  }

  Report report("ceilings: copy bandwidth, bf16 matmul rate, decode-shaped matmuls");
  Ceilings ceilings;
  bench_copy(session.args, session.stream, report, ceilings);
  bench_gemm(session.args, session.stream, report, ceilings);
  bench_decode(session.args, session.stream, report, ceilings);
  const int status = session.finish(report);
  std::printf("ceilings: copy %.0f GB/s (read + written), bf16 matmul %.1f TFLOP/s\n",
              ceilings.copy_gb_per_s, ceilings.gemm_tflops);
  return status;
}
