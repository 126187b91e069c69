// The GPU sampler (kernels/cuda/sampling.h) at Gemma's vocabulary, V = 262144 f32 logits per
// row, R = 1, 16, 64, 256 rows: greedy against top-k 40 + top-p 0.95 + temperature 0.8, in
// ms per step and GB/s of logits (R * V * 4 bytes over the time: one read of the logits;
// the sampled rows read each row 2-3 times) beside the bandwidth of a device-to-device copy
// (bytes read + written), measured here too. The greedy rows have elementwise.h's argmax beside them, a single
// read of the row with nothing else to do. A few slower settings (top-p or temperature
// alone, which keep thousands of ids on a flat row) are timed at R = 64.
//
// Two logit distributions: "gaussian" (N(0, 3^2), the shape of a language model's logits,
// a few ids near the top) and "uniform" ([-8, 8): flat, many ids near the top). Logit sets
// are rotated so each call reads from device memory, not L2.

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/random_fill.h"
#include "kernels/cuda/sampling.h"

namespace sluice::bench {
namespace {

using kernels::Device;
using kernels::DType;
using kernels::Tensor;
namespace kc = kernels::cuda;

constexpr int64_t kVocab = 262144;
constexpr int64_t kRowCounts[] = {1, 16, 64, 256};

class Buffer {
 public:
  explicit Buffer(size_t bytes) : bytes_(bytes) { SLUICE_CUDA_CHECK(cudaMalloc(&data_, bytes)); }
  ~Buffer() { SLUICE_CUDA_CHECK(cudaFree(data_)); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

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

void fill_logits(const Buffer& b, Dist dist, uint64_t seed, cudaStream_t stream) {
  const auto n = static_cast<int64_t>(b.bytes() / 4);
  const Tensor t = Tensor::make(b.data(), DType::kF32, {n}, Device::kCuda);
  if (dist == Dist::kUniform) {
    kc::fill_uniform(t, seed, -8.0f, 8.0f, stream);
    return;
  }
  kc::fill_uniform(t, seed, 0.0f, 1.0f, stream);
  const int64_t pairs = n / 2;
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

// Read + write bandwidth of a large device-to-device copy.
double copy_gb_per_s(cudaStream_t stream) {
  const size_t bytes = size_t{1} << 30;
  Buffer src(bytes), dst(bytes);
  SLUICE_CUDA_CHECK(cudaMemsetAsync(src.data(), 1, bytes, stream));
  const double ms = median_ms(
      [&](cudaStream_t s) {
        SLUICE_CUDA_CHECK(
            cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, s));
      },
      stream, 2, 5);
  return 2.0 * static_cast<double>(bytes) / 1e9 / (ms / 1e3);
}

size_t l2_bytes() {
  int dev = 0;
  SLUICE_CUDA_CHECK(cudaGetDevice(&dev));
  int l2 = 0;
  SLUICE_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  return static_cast<size_t>(l2);
}

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
    std::vector<std::unique_ptr<Buffer>> logits;
    for (int s = 0; s < sets; ++s) {
      logits.push_back(std::make_unique<Buffer>(set_bytes));
      fill_logits(*logits.back(), dist, 1000 + s, stream_);
    }
    std::vector<kc::SamplingRowParams> host_params(rows);
    for (int64_t r = 0; r < rows; ++r) {
      host_params[r].temperature = setting.temperature;
      host_params[r].top_k = setting.top_k;
      host_params[r].top_p = setting.top_p;
      host_params[r].seed = 77 + static_cast<uint64_t>(r);
      host_params[r].step = 5;
    }
    Buffer params(rows * sizeof(kc::SamplingRowParams)), out(rows * 4);
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(params.data(), host_params.data(), params.bytes(),
                                      cudaMemcpyHostToDevice, stream_));
    kc::SampleArgs a;
    a.params = Tensor::make(params.data(), DType::kI32, {rows, kc::kSamplingRowParamsWords},
                            Device::kCuda);
    a.out_tokens = Tensor::make(out.data(), DType::kI32, {rows}, Device::kCuda);

    int next = 0;
    const int reps = args_.quick ? 10 : 50;
    const double ms = median_ms(
        [&](cudaStream_t s) {
          a.logits = Tensor::make(logits[next]->data(), DType::kF32, {rows, kVocab}, Device::kCuda);
          next = (next + 1) % sets;
          kc::sample(a, s);
        },
        stream_, 3, reps);
    add(std::string("sample/") + setting.name, dist, rows, ms);

    if (with_argmax) {
      const double argmax_ms = median_ms(
          [&](cudaStream_t s) {
            kc::argmax({Tensor::make(out.data(), DType::kI32, {rows}, Device::kCuda),
                        Tensor::make(logits[next]->data(), DType::kF32, {rows, kVocab},
                                     Device::kCuda)},
                       s);
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
  const BenchArgs args = BenchArgs::parse(argc, argv);
  std::printf("device: %s\n", device_summary().c_str());
  cudaStream_t stream = nullptr;
  SLUICE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  const double copy = copy_gb_per_s(stream);
  Report report("sampling: V = 262144 f32 logits per row (frac_copy_bw: logits GB/s over the "
                "copy ceiling, read + written)");
  Bench bench(args, stream, report, copy);
  for (Dist dist : {Dist::kGaussian, Dist::kUniform}) {
    for (int64_t rows : kRowCounts) {
      if (args.quick && rows != 1 && rows != 64) continue;
      bench.run(dist, rows, kGreedy, /*with_argmax=*/true);
      bench.run(dist, rows, kTopKTopP, /*with_argmax=*/false);
    }
    for (const Setting& s : kSlowSettings) bench.run(dist, 64, s, /*with_argmax=*/false);
  }
  report.print();
  std::printf("copy ceiling: %.0f GB/s (read + written)\n", copy);
  SLUICE_CUDA_CHECK(cudaStreamDestroy(stream));
  if (!args.json_path.empty() && !report.write_json(args.json_path)) return 1;
  return 0;
}
