#pragma once
// GGUF v3 reader (v2 is accepted too: same layout). Parses the header, every metadata
// key/value and every tensor info from a byte range (usually a MappedFile), checking each
// count, length, size and offset against the bytes that exist before anything is allocated
// (RELIABILITY.md, E23). Tensor data is not copied: a tensor info points into the bytes.
//
// Data flow: GgufFile -> WeightSource (engine/weights/weight_source.h), which gives model
// code row-major shapes, and the tokenizer, which reads `tokenizer.ggml.*` through the
// typed getters below.
//
// Errors are one line: "<file>: <what> (<value>, limit <limit>)". Malformed or truncated
// files are DATA_LOSS; well-formed files using something this reader does not support
// (version 1, tensor type Q2_K, ...) are UNIMPLEMENTED.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/mapped_file.h"
#include "common/status.h"

namespace sluice::weights {

// Bounds on what a GGUF file may declare. Each count is also checked against the bytes
// that are actually left in the file, so these only matter for very large files.
inline constexpr uint64_t kGgufMaxKv = 1u << 20;
inline constexpr uint64_t kGgufMaxTensors = 1u << 20;
inline constexpr uint64_t kGgufMaxKeyBytes = 1u << 16;
inline constexpr uint64_t kGgufMaxTensorNameBytes = 1u << 10;
inline constexpr uint64_t kGgufMaxStringBytes = 1u << 30;
inline constexpr int kGgufMaxArrayDepth = 4;  // array of array of ... scalars
inline constexpr uint64_t kGgufMaxAlignment = 1u << 16;
inline constexpr uint32_t kGgufMaxDims = 4;
// Bound on the decoded metadata (vectors and strings), since a u8 array decodes to int64.
inline constexpr uint64_t kGgufMaxMetadataBytes = 1ull << 30;
inline constexpr uint64_t kGgufDefaultAlignment = 32;

// GGUF metadata value types (the file's type codes).
enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
const char* gguf_type_name(GgufType t);  // "u32", "string", "array", ...

// ggml tensor types this reader knows the block layout of.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
};
// "F32", "Q4_K", ...; for ids outside GgmlType, the ggml name when known ("Q2_K") or "?".
const char* ggml_type_name(GgmlType t);
// Elements per block and bytes per block; false for a type id this reader does not support.
bool ggml_type_layout(uint32_t type_id, uint64_t* block_elems, uint64_t* block_bytes);
// Bytes of one row of `ne0` elements, or nullopt if `ne0` is not a whole number of blocks
// or the size overflows.
std::optional<uint64_t> ggml_row_bytes(GgmlType t, uint64_t ne0);

struct GgufArray;
// One metadata value. Unsigned integer types hold uint64_t, signed ones int64_t, f32/f64
// hold double, bool holds bool, string holds std::string, array holds a GgufArray.
struct GgufValue {
  GgufType type = GgufType::kU8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> v;

  bool is_integer() const;
  bool is_float() const;
};

// An array holds elements of one type. Exactly one of the vectors is filled, by elem_type:
// integers of any width (zero- or sign-extended into int64; u64 values above INT64_MAX are
// stored bit-cast, so cast back to uint64_t for u64 arrays), floats (f32 widened exactly to
// double), bools, strings, or nested arrays.
struct GgufArray {
  GgufType elem_type = GgufType::kU8;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<uint8_t> bools;
  std::vector<std::string> strings;
  std::vector<std::shared_ptr<GgufArray>> arrays;
  uint64_t count = 0;  // number of elements, whatever the type

  uint64_t size() const { return count; }
  bool is_integer() const;  // elem_type is one of the integer types
  bool is_float() const;    // f32 or f64
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // ne[0] innermost (contiguous), as in the file; 1..4 dims
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;            // relative to the data blob, a multiple of the alignment
  uint64_t num_elements = 0;      // product of ne (checked)
  uint64_t nbytes = 0;            // computed from ne and the block layout (checked)
  const uint8_t* data = nullptr;  // into the parsed bytes; valid while the GgufFile lives
};

class GgufFile {
 public:
  // Parses `size` bytes at `data`. `keep_alive` owns those bytes (e.g. the MappedFile) and
  // is held for the GgufFile's lifetime; it may be null for a buffer the caller keeps alive
  // at least as long. `name` starts every error message. Never aborts on bad input.
  static StatusOr<std::unique_ptr<GgufFile>> parse(std::string_view name, const uint8_t* data,
                                                   uint64_t size,
                                                   std::shared_ptr<const void> keep_alive);
  // Maps and parses a file; the mapping lives as long as the GgufFile (and keep_alive()).
  static StatusOr<std::unique_ptr<GgufFile>> open(const std::string& path);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& name() const { return name_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data blob
  // The owner of the parsed bytes (null when the caller owns them).
  const std::shared_ptr<const void>& keep_alive() const { return keep_alive_; }

  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  // Typed lookups. A missing key is NOT_FOUND; a key of the wrong type (or an integer that
  // does not fit) is INVALID_ARGUMENT naming the key, the expected and the actual type.
  // get_u64/get_i64 accept any integer type whose value fits; get_f64 accepts any float or
  // integer type; get_bool only bool; get_string only string; get_array only arrays.
  StatusOr<uint64_t> get_u64(std::string_view key) const;
  StatusOr<int64_t> get_i64(std::string_view key) const;
  StatusOr<double> get_f64(std::string_view key) const;
  StatusOr<bool> get_bool(std::string_view key) const;
  StatusOr<std::string> get_string(std::string_view key) const;
  StatusOr<const GgufArray*> get_array(std::string_view key) const;

  // In file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  friend class GgufParser;
  GgufFile() = default;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t size_ = 0;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  std::shared_ptr<const void> keep_alive_;
};

}  // namespace sluice::weights
