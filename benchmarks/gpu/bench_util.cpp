#include "bench_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "kernels/cuda/cuda_check.h"

namespace sluice::bench {

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

double median_ms(const std::function<void(cudaStream_t)>& enqueue, cudaStream_t stream,
                 int warmup, int reps) {
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
  std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
  return ms[reps / 2];
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

}  // namespace sluice::bench
