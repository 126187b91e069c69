// The elementwise and row ops (kernels/cuda/elementwise.h) at model sizes, against the copy
// bandwidth measured in the same binary (a device-to-device cudaMemcpyAsync, counting bytes
// read plus written). Each op's figure counts the fewest bytes it must move: every input
// element read once, every output element written once (gathers: only the rows gathered).
//
// Shapes follow Gemma 4: hidden 2560 (E4B) and 5376 (31B), the 262144-token vocabulary, a
// prefill chunk of 16384 tokens (quick: 2048), a 16384-wide fused gate/up projection. Every
// problem moves hundreds of MB, several times the 50-60 MB L2, so no buffer rotation is
// needed. Inputs are uniform random (fill_uniform); in-place ops keep their data non-zero.

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/random_fill.h"

namespace sluice::bench {
namespace {

// A contiguous device tensor with its own buffer, filled with uniform values in [lo, hi).
struct DeviceTensor {
  DeviceTensor(DType t, std::initializer_list<int64_t> shape, uint64_t seed, cudaStream_t s,
               float lo = -1.0f, float hi = 1.0f)
      : buffer(bytes_of(t, shape)), view(buffer.view(t, shape)) {
    kc::fill_uniform(view, seed, lo, hi, s);
  }
  static size_t bytes_of(DType t, std::initializer_list<int64_t> shape) {
    size_t n = kernels::dtype_size(t);
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
  DeviceBuffer buffer;
  Tensor view;
};

// Random indices in [0, n) in device memory.
struct DeviceIndices {
  DeviceIndices(int64_t count, int64_t n, uint64_t seed, cudaStream_t stream)
      : buffer(count * sizeof(int32_t)) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(n - 1));
    std::vector<int32_t> ids(count);
    for (auto& id : ids) id = pick(rng);
    buffer.upload(ids.data(), count * sizeof(int32_t), stream);
    view = buffer.view(DType::kI32, {count});
  }
  DeviceBuffer buffer;
  Tensor view;
};

size_t esize(DType t) { return kernels::dtype_size(t); }

class Bench {
 public:
  Bench(const BenchArgs& args, cudaStream_t stream)
      : args_(args), stream_(stream), report_("elementwise ops vs copy bandwidth") {}

  const Report& report() const { return report_; }

  int reps() const { return args_.quick ? 5 : 20; }
  int64_t tokens() const { return args_.quick ? 2048 : 16384; }

  // Device-to-device copy of a large buffer: the bandwidth ceiling of this binary.
  void copy() {
    const size_t bytes = args_.quick ? (size_t{256} << 20) : (size_t{2} << 30);
    const CopyTiming copy = time_copy(bytes, stream_, reps());
    copy_gb_per_s_ = copy.gb_per_s;
    report_.add({"copy d2d",
                 {{"MiB", static_cast<double>(bytes >> 20)}},
                 {{"ms", copy.ms}, {"gb_per_s", copy_gb_per_s_}}});
  }

  // Times `enqueue`, which moves `bytes` at least, and records it beside the copy ceiling.
  void time(const std::string& name, std::vector<std::pair<std::string, double>> params,
            double bytes, const std::function<void(cudaStream_t)>& enqueue) {
    const double ms = median_ms(enqueue, stream_, 3, reps());
    const double gb_per_s = bytes / (ms * 1e6);
    report_.add({name,
                 std::move(params),
                 {{"ms", ms}, {"gb_per_s", gb_per_s}, {"frac_copy", gb_per_s / copy_gb_per_s_}}});
  }

  void embedding(int64_t hidden, DType out_type) {
    constexpr int64_t kVocab = 262144;
    const int64_t t = tokens();
    DeviceTensor table(DType::kBF16, {kVocab, hidden}, 2, stream_);
    DeviceTensor out(out_type, {t, hidden}, 3, stream_);
    DeviceIndices ids(t, kVocab, 4, stream_);
    const double bytes = static_cast<double>(t) * hidden * (2 + esize(out_type)) + 4.0 * t;
    time(
        std::string("embedding bf16->") + kernels::dtype_name(out_type),
        {{"T", static_cast<double>(t)}, {"H", static_cast<double>(hidden)}}, bytes,
        [&](cudaStream_t s) {
          kc::embedding({out.view, table.view, ids.view, std::sqrt(static_cast<float>(hidden))}, s);
        });
  }

  // gate and up as the halves of one fused [T, 2I] projection; `misalign` shifts every view
  // by one element (the scalar path).
  void geglu(DType in_type, DType out_type, bool misalign) {
    constexpr int64_t kInter = 16384;
    const int64_t t = tokens() / 4;
    DeviceTensor fused(in_type, {t, 2 * kInter + 8}, 5, stream_, -4.0f, 4.0f);
    DeviceTensor out(out_type, {t, kInter + 8}, 6, stream_);
    const int64_t shift = misalign ? 1 : 0;
    auto columns = [&](const Tensor& base, int64_t col0) {
      Tensor v = base;
      v.data = static_cast<char*>(v.data) + (col0 + shift) * esize(v.dtype);
      v.shape[1] = kInter;
      return v;
    };
    const Tensor gate = columns(fused.view, 0), up = columns(fused.view, kInter);
    const Tensor o = columns(out.view, 0);
    const double bytes = static_cast<double>(t) * kInter * (2 * esize(in_type) + esize(out_type));
    time(std::string("geglu ") + kernels::dtype_name(in_type) + "->" +
             kernels::dtype_name(out_type) + (misalign ? " misaligned" : ""),
         {{"T", static_cast<double>(t)}, {"I", static_cast<double>(kInter)}}, bytes,
         [&](cudaStream_t s) {
           kc::geglu({o, gate, up}, s);
         });
  }

  // out = a + b; with in_place, out is a (the residual stream).
  void add(DType a_type, DType b_type, bool in_place) {
    constexpr int64_t kHidden = 5376;
    const int64_t t = tokens();
    DeviceTensor a(a_type, {t, kHidden}, 7, stream_);
    DeviceTensor b(b_type, {t, kHidden}, 8, stream_);
    DeviceTensor out(a_type, {in_place ? 1 : t, kHidden}, 9, stream_);
    const Tensor o = in_place ? a.view : out.view;
    const double bytes = static_cast<double>(t) * kHidden * (2 * esize(a_type) + esize(b_type));
    time(std::string("add ") + kernels::dtype_name(a_type) + "+" + kernels::dtype_name(b_type) +
             (in_place ? " in place" : ""),
         {{"T", static_cast<double>(t)}, {"D", static_cast<double>(kHidden)}}, bytes,
         [&](cudaStream_t s) {
           kc::add({o, a.view, b.view}, s);
         });
  }

  void scale(DType type) {
    constexpr int64_t kHidden = 5376;
    const int64_t t = tokens();
    DeviceTensor x(type, {t, kHidden}, 10, stream_);
    const double bytes = 2.0 * static_cast<double>(t) * kHidden * esize(type);
    time(std::string("scale ") + kernels::dtype_name(type),
         {{"T", static_cast<double>(t)}, {"D", static_cast<double>(kHidden)}}, bytes,
         [&](cudaStream_t s) {
           kc::scale({x.view, 0.999f}, s);
         });
  }

  void softcap() {
    constexpr int64_t kVocab = 262144;
    const int64_t rows = args_.quick ? 64 : 256;
    DeviceTensor x(DType::kF32, {rows, kVocab}, 11, stream_, -60.0f, 60.0f);
    const double bytes = 2.0 * static_cast<double>(rows) * kVocab * 4;
    time("softcap f32", {{"R", static_cast<double>(rows)}, {"V", static_cast<double>(kVocab)}},
         bytes, [&](cudaStream_t s) {
           kc::softcap({x.view, 30.0f}, s);
         });
  }

  void convert(DType from, DType to) {
    constexpr int64_t kHidden = 5376;
    const int64_t t = tokens();
    DeviceTensor in(from, {t, kHidden}, 12, stream_);
    DeviceTensor out(to, {t, kHidden}, 13, stream_);
    const double bytes = static_cast<double>(t) * kHidden * (esize(from) + esize(to));
    time(std::string("convert ") + kernels::dtype_name(from) + "->" + kernels::dtype_name(to),
         {{"T", static_cast<double>(t)}, {"D", static_cast<double>(kHidden)}}, bytes,
         [&](cudaStream_t s) {
           kc::convert({out.view, in.view}, s);
         });
  }

  void gather_rows() {
    constexpr int64_t kHidden = 5376;
    const int64_t t = tokens();
    const int64_t rows = t / 2;
    DeviceTensor in(DType::kBF16, {t, kHidden}, 14, stream_);
    DeviceTensor out(DType::kF32, {rows, kHidden}, 15, stream_);
    DeviceIndices ids(rows, t, 16, stream_);
    const double bytes = static_cast<double>(rows) * kHidden * (2 + 4) + 4.0 * rows;
    time("gather_rows bf16->f32",
         {{"R", static_cast<double>(rows)}, {"D", static_cast<double>(kHidden)}}, bytes,
         [&](cudaStream_t s) {
           kc::gather_rows({out.view, in.view, ids.view}, s);
         });
  }

  void argmax(int64_t rows) {
    constexpr int64_t kVocab = 262144;
    DeviceTensor logits(DType::kF32, {rows, kVocab}, 17, stream_, -30.0f, 30.0f);
    DeviceIndices out(rows, 1, 18, stream_);
    const double bytes = static_cast<double>(rows) * kVocab * 4 + 4.0 * rows;
    time("argmax f32", {{"R", static_cast<double>(rows)}, {"V", static_cast<double>(kVocab)}},
         bytes, [&](cudaStream_t s) {
           kc::argmax({out.view, logits.view}, s);
         });
  }

 private:
  BenchArgs args_;
  cudaStream_t stream_;
  Report report_;
  double copy_gb_per_s_ = 1.0;
};

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  using sluice::kernels::DType;
  // A blocking stream: ordered after the legacy default stream.
  const sluice::bench::Session session(argc, argv, cudaStreamDefault);
  sluice::bench::Bench b(session.args, session.stream);
  b.copy();
  b.embedding(2560, DType::kBF16);
  b.embedding(5376, DType::kF32);
  b.geglu(DType::kBF16, DType::kBF16, false);
  b.geglu(DType::kF32, DType::kBF16, false);
  b.geglu(DType::kBF16, DType::kBF16, true);
  b.add(DType::kBF16, DType::kBF16, false);
  b.add(DType::kF32, DType::kBF16, true);
  b.scale(DType::kF32);
  b.scale(DType::kBF16);
  b.softcap();
  b.convert(DType::kF32, DType::kBF16);
  b.convert(DType::kBF16, DType::kF32);
  b.gather_rows();
  b.argmax(1);
  b.argmax(session.args.quick ? 32 : 256);
  return session.finish(b.report());
}
