#pragma once
// safetensors reader: one file (`model.safetensors`) or a sharded set
// (`model.safetensors.index.json` + shards), memory-mapped; tensor data is never copied.
//
// File layout: u64 little-endian header length N, N bytes of JSON, then the data region.
// The JSON object maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data region), plus an optional "__metadata__" string map.
// Validation follows the reference implementation: N <= kSafetensorsMaxHeaderBytes and
// within the file; the header is a JSON object without duplicate keys; each tensor's byte
// size is product(shape) * dtype size (checked math) and equals end - begin; sorted by
// offset, tensors tile the data region exactly (no gap, no overlap, nothing after the last).
// Only F32, F16 and BF16 are supported; any other dtype is UNIMPLEMENTED, by name.
//
// Errors are one line: "<file>: <what> (<value>, limit <limit>)"; malformed input is
// DATA_LOSS (or INVALID_ARGUMENT for a bad index file).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/mapped_file.h"
#include "common/status.h"

namespace sluice::weights {

inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
inline constexpr uint64_t kSafetensorsMaxIndexBytes = 64u << 20;
inline constexpr int kSafetensorsMaxJsonDepth = 16;
inline constexpr size_t kSafetensorsMaxDims = 8;
inline constexpr size_t kSafetensorsMaxShards = 4096;

enum class SafetensorsDType : uint8_t { kF32, kF16, kBF16 };
const char* safetensors_dtype_name(SafetensorsDType t);  // "F32", "F16", "BF16"
size_t safetensors_dtype_size(SafetensorsDType t);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;  // row-major as stored; may be empty (a scalar)
  uint64_t begin = 0;          // data_offsets, relative to the data region
  uint64_t end = 0;
  uint64_t num_elements = 0;
  const uint8_t* data = nullptr;  // into the parsed bytes (any alignment)
  uint64_t nbytes() const { return end - begin; }
};

// One parsed safetensors file.
class SafetensorsFile {
 public:
  // Parses `size` bytes at `data` (owned by `keep_alive`, which may be null for a buffer
  // the caller keeps alive). `name` starts every error message. Never aborts on bad input.
  static StatusOr<std::unique_ptr<SafetensorsFile>> parse(std::string_view name,
                                                          const uint8_t* data, uint64_t size,
                                                          std::shared_ptr<const void> keep_alive);
  // Maps and parses a file.
  static StatusOr<std::unique_ptr<SafetensorsFile>> open(const std::string& path);

  const std::string& name() const { return name_; }
  // Sorted by data offset.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view tensor_name) const;
  // The "__metadata__" map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::shared_ptr<const void>& keep_alive() const { return keep_alive_; }

 private:
  SafetensorsFile() = default;
  Status parse_header(const uint8_t* data, uint64_t size);
  std::string name_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
  std::shared_ptr<const void> keep_alive_;
};

// A set of safetensors files seen as one name space.
class SafetensorsSet {
 public:
  // A directory holding `model.safetensors.index.json` (sharded; preferred when present)
  // or `model.safetensors`. NOT_FOUND when it has neither.
  static StatusOr<std::unique_ptr<SafetensorsSet>> open_dir(const std::string& dir);
  // A `*.safetensors.index.json`: every shard named in "weight_map" must be a plain file
  // name in the index's directory, must exist and parse, and must hold every tensor mapped
  // to it; no tensor may appear in two shards.
  static StatusOr<std::unique_ptr<SafetensorsSet>> open_index(const std::string& index_path);
  // A single `.safetensors` file.
  static StatusOr<std::unique_ptr<SafetensorsSet>> open_file(const std::string& path);
  // Wraps one already-parsed file (tests and the fuzzers parse from memory).
  static std::unique_ptr<SafetensorsSet> from_file(std::unique_ptr<SafetensorsFile> file);

  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }
  // The tensor and the shard that holds it, or nullptr.
  const SafetensorsTensor* find(std::string_view name,
                                const SafetensorsFile** shard = nullptr) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;

 private:
  SafetensorsSet() = default;
  Status add_shard(std::unique_ptr<SafetensorsFile> shard);
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, std::pair<size_t, const SafetensorsTensor*>, std::less<>> index_;
};

}  // namespace sluice::weights
