// The GPU sampler (kernels/cuda/sampling.h) at Gemma's vocabulary, V = 262144 f32 logits per
// row, R = 1, 16, 64, 256 rows: greedy against top-k 40 + top-p 0.95 + temperature 0.8, in
// ms per step and GB/s of logits (R * V * 4 bytes over the time: one read of the logits;
// the sampled rows read each row 2-3 times) beside the bandwidth of a device-to-device copy
// (bytes read + written), measured here too. The greedy rows have elementwise.h's argmax beside
// them, a single read of the row with nothing else to do. A few slower settings (top-p or
// temperature alone, which keep thousands of ids on a flat row) are timed at R = 64.
//
// Two logit distributions: "gaussian" (N(0, 3^2), the shape of a language model's logits,
// a few ids near the top) and "uniform" ([-8, 8): flat, many ids near the top). Logit sets
// are rotated so each call reads from device memory, not L2.

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/sampling.h"

namespace sluice::bench {
namespace {

constexpr int64_t kVocab = 262144;
constexpr int64_t kRowCounts[] = {1, 16, 64, 256};

// In place: pairs of uniforms in [0, 1) -> pairs of N(0, sigma^2) (Box-Muller).
__global__ void gaussian_from_uniform_kernel(float* x, int64_t pairs, float sigma) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= pairs) return;
  const float u1 = 1.0f - x[2 * i];  // (0, 1]
  const float u2 = x[2 * i + 1];
  const float r = sigma * sqrtf(-2.0f * logf(u1));
  float s, c;
  sincospif(2.0f * u2, &s, &c);
  x[2 * i] = r * c;
  x[2 * i + 1] = r * s;
}

enum class Dist { kGaussian, kUniform };

void fill_logits(const DeviceBuffer& b, Dist dist, uint64_t seed, cudaStream_t stream) {
  if (dist == Dist::kUniform) {
    b.fill_uniform(DType::kF32, seed, -8.0f, 8.0f, stream);
    return;
  }
  b.fill_uniform(DType::kF32, seed, 0.0f, 1.0f, stream);
  const auto pairs = static_cast<int64_t>(b.bytes() / 8);
  gaussian_from_uniform_kernel<<<static_cast<unsigned>((pairs + 255) / 256), 256, 0, stream>>>(
      static_cast<float*>(b.data()), pairs, 3.0f);
  SLUICE_CUDA_CHECK(cudaGetLastError());
}

struct Setting {
  const char* name;
  float temperature;
  int32_t top_k;
  float top_p;
};

constexpr Setting kGreedy = {"greedy", 0.0f, -1, 1.0f};
constexpr Setting kTopKTopP = {"topk40_topp0.95_t0.8", 0.8f, 40, 0.95f};
constexpr Setting kSlowSettings[] = {{"topp0.95_t1", 1.0f, -1, 0.95f},
                                     {"temperature1", 1.0f, -1, 1.0f}};

class Bench {
 public:
  Bench(const BenchArgs& args, cudaStream_t stream, Report& report, double copy_ceiling)
      : args_(args), stream_(stream), report_(report), copy_ceiling_(copy_ceiling) {}

  // Times sample() (and, for greedy, argmax) over rotating logit sets of `rows` rows.
  void run(Dist dist, int64_t rows, const Setting& setting, bool with_argmax) {
    const size_t set_bytes = static_cast<size_t>(rows * kVocab) * 4;
    const size_t rotate_bytes = 4 * l2_bytes();
    const int sets =
        static_cast<int>(std::clamp<size_t>((rotate_bytes + set_bytes - 1) / set_bytes, 1, 256));
    std::vector<DeviceBuffer> logits;
    for (int s = 0; s < sets; ++s) {
      logits.emplace_back(set_bytes);
      fill_logits(logits.back(), dist, 1000 + s, stream_);
    }
    std::vector<kc::SamplingRowParams> host_params(rows);
    for (int64_t r = 0; r < rows; ++r) {
      host_params[r].temperature = setting.temperature;
      host_params[r].top_k = setting.top_k;
      host_params[r].top_p = setting.top_p;
      host_params[r].seed = 77 + static_cast<uint64_t>(r);
      host_params[r].step = 5;
    }
    DeviceBuffer params(rows * sizeof(kc::SamplingRowParams)), out(rows * 4);
    params.upload(host_params.data(), params.bytes(), stream_);
    kc::SampleArgs a;
    a.params = params.view(DType::kI32, {rows, kc::kSamplingRowParamsWords});
    a.out_tokens = out.view(DType::kI32, {rows});

    int next = 0;
    const int reps = args_.quick ? 10 : 50;
    const double ms = median_ms(
        [&](cudaStream_t s) {
          a.logits = logits[next].view(DType::kF32, {rows, kVocab});
          next = (next + 1) % sets;
          kc::sample(a, s);
        },
        stream_, 3, reps);
    add(std::string("sample/") + setting.name, dist, rows, ms);

    if (with_argmax) {
      const double argmax_ms = median_ms(
          [&](cudaStream_t s) {
            kc::argmax(
                {out.view(DType::kI32, {rows}), logits[next].view(DType::kF32, {rows, kVocab})}, s);
            next = (next + 1) % sets;
          },
          stream_, 3, reps);
      add("argmax (elementwise.h)", dist, rows, argmax_ms);
    }
  }

 private:
  void add(std::string name, Dist dist, int64_t rows, double ms) {
    const double gb_per_s = static_cast<double>(rows * kVocab) * 4 / 1e9 / (ms / 1e3);
    report_.add({std::move(name) + (dist == Dist::kGaussian ? " gaussian" : " uniform"),
                 {{"R", static_cast<double>(rows)}, {"V", static_cast<double>(kVocab)}},
                 {{"ms", ms},
                  {"us_per_row", ms * 1e3 / static_cast<double>(rows)},
                  {"logits_gb_per_s", gb_per_s},
                  {"frac_copy_bw", gb_per_s / copy_ceiling_}}});
  }

  const BenchArgs& args_;
  cudaStream_t stream_;
  Report& report_;
  double copy_ceiling_;
};

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  using namespace sluice::bench;
  const Session session(argc, argv);

  const double copy = measure_copy_gbps(size_t{1} << 30, session.stream, 5);
  Report report(
      "sampling: V = 262144 f32 logits per row (frac_copy_bw: logits GB/s over the "
      "copy ceiling, read + written)");
  Bench bench(session.args, session.stream, report, copy);
  for (Dist dist : {Dist::kGaussian, Dist::kUniform}) {
    for (int64_t rows : kRowCounts) {
      if (session.args.quick && rows != 1 && rows != 64) continue;
      bench.run(dist, rows, kGreedy, /*with_argmax=*/true);
      bench.run(dist, rows, kTopKTopP, /*with_argmax=*/false);
    }
    for (const Setting& s : kSlowSettings) bench.run(dist, 64, s, /*with_argmax=*/false);
  }
  const int status = session.finish(report);
  std::printf("copy ceiling: %.0f GB/s (read + written)\n", copy);
  return status;
}
