// GGUF type tables (names, block layouts) and the typed metadata getters of GgufFile.

#include <fmt/format.h>

#include <limits>

#include "common/checked_math.h"
#include "engine/weights/gguf.h"

namespace sluice::weights {

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::kU8:
      return "u8";
    case GgufType::kI8:
      return "i8";
    case GgufType::kU16:
      return "u16";
    case GgufType::kI16:
      return "i16";
    case GgufType::kU32:
      return "u32";
    case GgufType::kI32:
      return "i32";
    case GgufType::kF32:
      return "f32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kU64:
      return "u64";
    case GgufType::kI64:
      return "i64";
    case GgufType::kF64:
      return "f64";
  }
  return "?";
}

const char* ggml_type_name(GgmlType t) {
  switch (static_cast<uint32_t>(t)) {
    case 0:
      return "F32";
    case 1:
      return "F16";
    case 2:
      return "Q4_0";
    case 3:
      return "Q4_1";
    case 6:
      return "Q5_0";
    case 7:
      return "Q5_1";
    case 8:
      return "Q8_0";
    case 9:
      return "Q8_1";
    case 10:
      return "Q2_K";
    case 11:
      return "Q3_K";
    case 12:
      return "Q4_K";
    case 13:
      return "Q5_K";
    case 14:
      return "Q6_K";
    case 15:
      return "Q8_K";
    case 16:
      return "IQ2_XXS";
    case 17:
      return "IQ2_XS";
    case 18:
      return "IQ3_XXS";
    case 19:
      return "IQ1_S";
    case 20:
      return "IQ4_NL";
    case 21:
      return "IQ3_S";
    case 22:
      return "IQ2_S";
    case 23:
      return "IQ4_XS";
    case 24:
      return "I8";
    case 25:
      return "I16";
    case 26:
      return "I32";
    case 27:
      return "I64";
    case 28:
      return "F64";
    case 29:
      return "IQ1_M";
    case 30:
      return "BF16";
    case 34:
      return "TQ1_0";
    case 35:
      return "TQ2_0";
    case 39:
      return "MXFP4";
  }
  return "?";
}

bool ggml_type_layout(uint32_t type_id, uint64_t* block_elems, uint64_t* block_bytes) {
  uint64_t elems = 0;
  uint64_t bytes = 0;
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::kF32:
      elems = 1;
      bytes = 4;
      break;
    case GgmlType::kF16:
      elems = 1;
      bytes = 2;
      break;
    case GgmlType::kBF16:
      elems = 1;
      bytes = 2;
      break;
    case GgmlType::kQ4_0:
      elems = 32;
      bytes = 18;
      break;
    case GgmlType::kQ4_1:
      elems = 32;
      bytes = 20;
      break;
    case GgmlType::kQ5_0:
      elems = 32;
      bytes = 22;
      break;
    case GgmlType::kQ5_1:
      elems = 32;
      bytes = 24;
      break;
    case GgmlType::kQ8_0:
      elems = 32;
      bytes = 34;
      break;
    case GgmlType::kQ4_K:
      elems = 256;
      bytes = 144;
      break;
    case GgmlType::kQ5_K:
      elems = 256;
      bytes = 176;
      break;
    case GgmlType::kQ6_K:
      elems = 256;
      bytes = 210;
      break;
    default:
      return false;
  }
  if (block_elems) *block_elems = elems;
  if (block_bytes) *block_bytes = bytes;
  return true;
}

std::optional<uint64_t> ggml_row_bytes(GgmlType t, uint64_t ne0) {
  uint64_t block_elems = 0;
  uint64_t block_bytes = 0;
  if (!ggml_type_layout(static_cast<uint32_t>(t), &block_elems, &block_bytes)) return std::nullopt;
  if (ne0 % block_elems != 0) return std::nullopt;
  return checked_mul(ne0 / block_elems, block_bytes);
}

static bool is_integer_type(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kU16:
    case GgufType::kI16:
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kU64:
    case GgufType::kI64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_integer() const { return is_integer_type(type); }
bool GgufValue::is_float() const { return type == GgufType::kF32 || type == GgufType::kF64; }
bool GgufArray::is_integer() const { return is_integer_type(elem_type); }
bool GgufArray::is_float() const {
  return elem_type == GgufType::kF32 || elem_type == GgufType::kF64;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status missing(const std::string& file, std::string_view key) {
  return Status::not_found(fmt::format("{}: metadata key '{}' not found", file, key));
}

Status wrong_type(const std::string& file, std::string_view key, std::string_view expected,
                  const GgufValue& v) {
  std::string actual = gguf_type_name(v.type);
  if (v.type == GgufType::kArray) {
    const auto& arr = std::get<std::shared_ptr<GgufArray>>(v.v);
    actual = fmt::format("array of {}", gguf_type_name(arr->elem_type));
  }
  return Status::invalid_argument(
      fmt::format("{}: metadata key '{}' has type {}, expected {}", file, key, actual, expected));
}

}  // namespace

StatusOr<uint64_t> GgufFile::get_u64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(name_, key);
  if (const auto* u = std::get_if<uint64_t>(&v->v)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v->v)) {
    if (*i >= 0) return static_cast<uint64_t>(*i);
    return Status::invalid_argument(
        fmt::format("{}: metadata key '{}' is negative ({}, limit 0), expected an unsigned integer",
                    name_, key, *i));
  }
  return wrong_type(name_, key, "an unsigned integer", *v);
}

StatusOr<int64_t> GgufFile::get_i64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(name_, key);
  if (const auto* i = std::get_if<int64_t>(&v->v)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v->v)) {
    if (*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(*u);
    }
    return Status::invalid_argument(
        fmt::format("{}: metadata key '{}' does not fit in i64 ({}, limit {})", name_, key, *u,
                    std::numeric_limits<int64_t>::max()));
  }
  return wrong_type(name_, key, "an integer", *v);
}

StatusOr<double> GgufFile::get_f64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(name_, key);
  if (const auto* d = std::get_if<double>(&v->v)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&v->v)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&v->v)) return static_cast<double>(*i);
  return wrong_type(name_, key, "a number", *v);
}

StatusOr<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(name_, key);
  if (const auto* b = std::get_if<bool>(&v->v)) return *b;
  return wrong_type(name_, key, "bool", *v);
}

StatusOr<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(name_, key);
  if (const auto* s = std::get_if<std::string>(&v->v)) return *s;
  return wrong_type(name_, key, "string", *v);
}

StatusOr<const GgufArray*> GgufFile::get_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return missing(name_, key);
  if (const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v->v)) {
    return static_cast<const GgufArray*>(a->get());
  }
  return wrong_type(name_, key, "array", *v);
}

}  // namespace sluice::weights
