#pragma once
// GGUF v3 reader. Parses the header, every metadata key/value and every tensor info from a
// byte range (usually a MappedFile), checking each count, length, size and offset against
// the bytes that exist before anything is allocated. Tensor data is not copied: a tensor
// info points into the mapped bytes.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/mapped_file.h"
#include "common/status.h"

namespace sluice::weights {

// GGUF metadata value types (the file's type codes).
enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

// ggml tensor types this reader knows the block layout of.
enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8,
  kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kBF16 = 30,
};
const char* ggml_type_name(GgmlType t);
// Elements per block and bytes per block; false for a type id this reader does not support.
bool ggml_type_layout(uint32_t type_id, uint64_t* block_elems, uint64_t* block_bytes);

struct GgufArray;
// One metadata value. Integers keep their file type (see `type`); arrays hold elements
// of a single type.
struct GgufValue {
  GgufType type = GgufType::kU8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> v;

  // Typed accessors: nullopt-like failure is a Status naming the key and the actual type.
  bool is_integer() const;
  bool is_float() const;
};
struct GgufArray {
  GgufType elem_type = GgufType::kU8;
  // Exactly one of these is filled, by elem_type: integers (any width, sign-extended or
  // zero-extended into int64/uint64 as the file type says), floats, bools, strings.
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<uint8_t> bools;
  std::vector<std::string> strings;
  uint64_t size() const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // ne[0] innermost (contiguous), as in the file
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;       // relative to the data blob
  uint64_t nbytes = 0;       // computed from ne and the block layout (checked)
  const uint8_t* data = nullptr;  // into the mapped file
};

class GgufFile {
 public:
  // Parses `size` bytes at `data` (kept alive by `keep_alive`, which may be null for a
  // buffer the caller owns for the GgufFile's lifetime). `name` is used in error messages
  // ("NAME: tensor 'x' offset ... past the end of the file (N bytes)").
  static StatusOr<std::unique_ptr<GgufFile>> parse(std::string_view name, const uint8_t* data,
                                                   uint64_t size,
                                                   std::shared_ptr<const void> keep_alive);
  // Maps and parses a file.
  static StatusOr<std::unique_ptr<GgufFile>> open(const std::string& path);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& name() const { return name_; }

  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  // Typed lookups. A missing key is NOT_FOUND; a key of the wrong type is INVALID_ARGUMENT
  // naming the key, the expected and the actual type. Integer getters accept any integer
  // type whose value fits.
  StatusOr<uint64_t> get_u64(std::string_view key) const;
  StatusOr<int64_t> get_i64(std::string_view key) const;
  StatusOr<double> get_f64(std::string_view key) const;  // any float or integer type
  StatusOr<bool> get_bool(std::string_view key) const;
  StatusOr<std::string> get_string(std::string_view key) const;
  StatusOr<const GgufArray*> get_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::shared_ptr<const void> keep_alive_;
};

}  // namespace sluice::weights
