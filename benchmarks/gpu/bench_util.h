#pragma once
// Shared pieces of the GPU benchmarks: event timing with warm-up and median, the device's
// facts, and a report that prints a table and writes JSON (benchmarks/gpu/run.sh collects
// the JSON files under $OUT).
//
// Every benchmark binary accepts:
//   --json PATH   write the report there as JSON
//   --quick       fewer sizes and repetitions (a smoke run; figures not for quoting)

#include <cuda_runtime_api.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sluice::bench {

struct BenchArgs {
  std::string json_path;
  bool quick = false;
  static BenchArgs parse(int argc, char** argv);
};

// Median milliseconds of `reps` runs of `enqueue` (which queues work on `stream`), each
// bracketed by CUDA events, after `warmup` untimed runs. Aborts on a CUDA error.
double median_ms(const std::function<void(cudaStream_t)>& enqueue, cudaStream_t stream,
                 int warmup = 3, int reps = 20);

// Name, SM count, memory, clocks of device 0, as one line.
std::string device_summary();

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

}  // namespace sluice::bench
