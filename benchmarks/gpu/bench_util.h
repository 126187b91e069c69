#pragma once
// Shared pieces of the GPU benchmarks: the frame of a benchmark's main (arguments, device
// line, stream, report), device buffers, timing (CUDA events, graph replays, host clock;
// each a median after warm-up), the copy-bandwidth ceiling every figure is compared with,
// and a report that prints a table and writes JSON (benchmarks/gpu/run.sh collects the JSON
// files under $OUT).
//
// Every benchmark binary accepts:
//   --json PATH   write the report there as JSON
//   --quick       fewer sizes and repetitions (a smoke run; figures not for quoting)

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "kernels/tensor.h"

// Declared here so that the alias kc below needs no CUDA ops header.
namespace sluice::kernels::cuda {}  // namespace sluice::kernels::cuda

namespace sluice::bench {

// The kernel names every benchmark uses.
using kernels::Device;
using kernels::DType;
using kernels::Tensor;
namespace kc = kernels::cuda;

struct BenchArgs {
  std::string json_path;
  bool quick = false;
  static BenchArgs parse(int argc, char** argv);
};

// Median milliseconds of `reps` runs of `enqueue` (which queues work on `stream`), each
// bracketed by CUDA events, after `warmup` untimed runs. Aborts on a CUDA error.
double median_ms(const std::function<void(cudaStream_t)>& enqueue, cudaStream_t stream,
                 int warmup = 3, int reps = 20);

// Median milliseconds of one replay of a CUDA graph captured from one call of `enqueue` on
// `stream` (how the engine runs decode: no host launch gaps), timed as median_ms does.
// `enqueue` must not allocate (warm lazily created state with an eager call first).
double graph_median_ms(const std::function<void(cudaStream_t)>& enqueue, cudaStream_t stream,
                       int warmup = 3, int reps = 20);

// Median milliseconds of `reps` calls of `f`, each timed on the host clock (for work that
// blocks, such as a whole forward pass as a server sees it).
double host_median_ms(const std::function<void()>& f, int reps);

// A device-to-device cudaMemcpyAsync of `bytes` between two fresh buffers (the source filled
// with uniform random values): median ms of `reps` copies after 2 warm-ups, and the
// bandwidth counting bytes read plus bytes written (2 * bytes over the time): the memory
// ceiling the benchmarks compare their figures with.
struct CopyTiming {
  double ms = 0;
  double gb_per_s = 0;
};
CopyTiming time_copy(size_t bytes, cudaStream_t stream, int reps = 10);
inline double measure_copy_gbps(size_t bytes, cudaStream_t stream, int reps = 10) {
  return time_copy(bytes, stream, reps).gb_per_s;
}

// Name, SM count, memory, clocks of device 0, as one line.
std::string device_summary();

// L2 cache bytes of the current device: inputs are sized or rotated against it so that
// each timed call reads device memory, not L2.
size_t l2_bytes();

// Device memory owned by a benchmark (cudaMalloc; at least one byte, so an empty buffer
// still has a valid pointer). Contents start undefined. Move-only; freed on destruction.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // The start of the buffer as a contiguous device tensor; the shape must fit in bytes().
  Tensor view(DType t, std::initializer_list<int64_t> shape) const;
  // Fills the whole buffer, seen as bytes() / dtype_size(t) elements of `t`, with uniform
  // values in [lo, hi) (kc::fill_uniform), queued on `stream`.
  void fill_uniform(DType t, uint64_t seed, float lo, float hi, cudaStream_t stream) const;
  // Copies `bytes` of host memory to the start of the buffer on `stream` and waits for it.
  void upload(const void* host, size_t bytes, cudaStream_t stream) const;

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// One measured point: a benchmark name, its parameters and its figures.
struct Record {
  std::string bench;
  std::vector<std::pair<std::string, double>> params;   // e.g. {"batch", 16}
  std::vector<std::pair<std::string, double>> figures;  // e.g. {"ms", 0.12}, {"gb_per_s", 3900}
};

class Report {
 public:
  explicit Report(std::string title) : title_(std::move(title)) {}
  void add(Record r) { records_.push_back(std::move(r)); }
  // Prints every record as an aligned table on stdout.
  void print() const;
  // Writes {"title", "device", "records": [...]} to `path`; false (with a message) on failure.
  bool write_json(const std::string& path) const;

 private:
  std::string title_;
  std::vector<Record> records_;
};

// The frame of a benchmark's main: parses the arguments (exits 2 on an unknown one), prints
// "device: <device_summary()>" and creates the stream the benchmark runs on (destroyed with
// the session).
struct Session {
  Session(int argc, char** argv, unsigned stream_flags = cudaStreamNonBlocking);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Prints `report` and, with --json, writes it there. Returns main's exit status: 0, or 1
  // when the JSON could not be written.
  int finish(const Report& report) const;

  const BenchArgs args;
  const cudaStream_t stream;
};

}  // namespace sluice::bench
