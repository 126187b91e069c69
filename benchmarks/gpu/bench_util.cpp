#include "bench_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/random_fill.h"

namespace sluice::bench {
namespace {

// The median of `v` (the upper one of an even count); reorders `v`.
double median(std::vector<double>& v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace

BenchArgs BenchArgs::parse(int argc, char** argv) {
  BenchArgs a;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      a.json_path = argv[++i];
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      a.quick = true;
    } else {
      std::fprintf(stderr, "unknown argument: %s (expected --json PATH, --quick)\n", argv[i]);
      std::exit(2);
    }
  }
  return a;
}

double median_ms(const std::function<void(cudaStream_t)>& enqueue, cudaStream_t stream, int warmup,
                 int reps) {
  for (int i = 0; i < warmup; ++i) enqueue(stream);
  SLUICE_CUDA_CHECK(cudaGetLastError());
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<cudaEvent_t> ev(2 * reps);
  for (auto& e : ev) SLUICE_CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < reps; ++i) {
    SLUICE_CUDA_CHECK(cudaEventRecord(ev[2 * i], stream));
    enqueue(stream);
    SLUICE_CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], stream));
  }
  SLUICE_CUDA_CHECK(cudaGetLastError());
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> ms(reps);
  for (int i = 0; i < reps; ++i) {
    float t = 0;
    SLUICE_CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
    ms[i] = t;
  }
  for (auto& e : ev) SLUICE_CUDA_CHECK(cudaEventDestroy(e));
  return median(ms);
}

double graph_median_ms(const std::function<void(cudaStream_t)>& enqueue, cudaStream_t stream,
                       int warmup, int reps) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  SLUICE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  enqueue(stream);
  SLUICE_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  SLUICE_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  const double ms = median_ms([&](cudaStream_t s) { SLUICE_CUDA_CHECK(cudaGraphLaunch(exec, s)); },
                              stream, warmup, reps);
  SLUICE_CUDA_CHECK(cudaGraphExecDestroy(exec));
  SLUICE_CUDA_CHECK(cudaGraphDestroy(graph));
  return ms;
}

double host_median_ms(const std::function<void()>& f, int reps) {
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(ms);
}

CopyTiming time_copy(size_t bytes, cudaStream_t stream, int reps) {
  DeviceBuffer src(bytes), dst(bytes);
  src.fill_uniform(DType::kF32, 1, -1.0f, 1.0f, stream);
  CopyTiming t;
  t.ms = median_ms(
      [&](cudaStream_t s) {
        SLUICE_CUDA_CHECK(
            cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, s));
      },
      stream, 2, reps);
  t.gb_per_s = 2.0 * static_cast<double>(bytes) / (t.ms * 1e6);
  return t;
}

size_t l2_bytes() {
  int dev = 0;
  SLUICE_CUDA_CHECK(cudaGetDevice(&dev));
  int l2 = 0;
  SLUICE_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  return static_cast<size_t>(l2);
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  SLUICE_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(bytes, 1)));
}

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr) SLUICE_CUDA_CHECK(cudaFree(data_));
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (data_ != nullptr) SLUICE_CUDA_CHECK(cudaFree(data_));
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

Tensor DeviceBuffer::view(DType t, std::initializer_list<int64_t> shape) const {
  return Tensor::make(data_, t, shape, Device::kCuda);
}

void DeviceBuffer::fill_uniform(DType t, uint64_t seed, float lo, float hi,
                                cudaStream_t stream) const {
  const auto n = static_cast<int64_t>(bytes_ / kernels::dtype_size(t));
  kc::fill_uniform(view(t, {n}), seed, lo, hi, stream);
}

void DeviceBuffer::upload(const void* host, size_t bytes, cudaStream_t stream) const {
  SLUICE_CUDA_CHECK(cudaMemcpyAsync(data_, host, bytes, cudaMemcpyHostToDevice, stream));
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

std::string device_summary() {
  int dev = 0;
  SLUICE_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  SLUICE_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  size_t free_b = 0, total_b = 0;
  SLUICE_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return fmt::format("{} (sm_{}{}, {} SMs, {:.1f} GiB, L2 {} MiB)", p.name, p.major, p.minor,
                     p.multiProcessorCount, total_b / 1073741824.0, p.l2CacheSize >> 20);
}

void Report::print() const {
  std::printf("== %s\n", title_.c_str());
  for (const Record& r : records_) {
    std::string line = fmt::format("{:<28}", r.bench);
    for (const auto& [k, v] : r.params) line += fmt::format(" {}={:<6g}", k, v);
    line += " |";
    for (const auto& [k, v] : r.figures) line += fmt::format(" {}={:.4g}", k, v);
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
}

bool Report::write_json(const std::string& path) const {
  std::string s = fmt::format("{{\"title\": \"{}\", \"device\": \"{}\", \"records\": [\n", title_,
                              device_summary());
  for (size_t i = 0; i < records_.size(); ++i) {
    const Record& r = records_[i];
    s += fmt::format("  {{\"bench\": \"{}\"", r.bench);
    for (const auto& [k, v] : r.params) s += fmt::format(", \"{}\": {}", k, v);
    for (const auto& [k, v] : r.figures) s += fmt::format(", \"{}\": {}", k, v);
    s += i + 1 < records_.size() ? "},\n" : "}\n";
  }
  s += "]}\n";
  std::ofstream f(path);
  if (!f || !(f << s)) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

namespace {

// Prints the device line every benchmark opens with, then creates its stream.
cudaStream_t announce_device_and_create_stream(unsigned flags) {
  std::printf("device: %s\n", device_summary().c_str());
  cudaStream_t stream = nullptr;
  SLUICE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, flags));
  return stream;
}

}  // namespace

Session::Session(int argc, char** argv, unsigned stream_flags)
    : args(BenchArgs::parse(argc, argv)), stream(announce_device_and_create_stream(stream_flags)) {}

Session::~Session() { SLUICE_CUDA_CHECK(cudaStreamDestroy(stream)); }

int Session::finish(const Report& report) const {
  report.print();
  if (!args.json_path.empty() && !report.write_json(args.json_path)) return 1;
  return 0;
}

}  // namespace sluice::bench
