// GGUF parser: header, metadata, tensor infos. Every count and length read from the file is
// checked against the bytes left (and a fixed limit) before anything is allocated for it;
// all size arithmetic goes through common/checked_math.h.

#include "engine/weights/gguf.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <numeric>

#include "common/checked_math.h"
#include "engine/weights/printable.h"

namespace sluice::weights {

static_assert(std::endian::native == std::endian::little,
              "GGUF reading assumes a little-endian host");

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32

// Smallest encoding of one element of `t`, so that `count` elements need at least
// count * min_size bytes. A nested array is at least its u32 type and u64 count.
uint64_t min_encoded_size(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
      return 8;
    case GgufType::kString:
      return 8;
    case GgufType::kArray:
      return 12;
  }
  return 1;
}

// What one decoded element costs in memory (charged against kGgufMaxMetadataBytes).
uint64_t decoded_size(GgufType t) {
  switch (t) {
    case GgufType::kBool:
      return 1;
    case GgufType::kString:
      return sizeof(std::string);
    case GgufType::kArray:
      return sizeof(GgufArray) + 2 * sizeof(void*);
    default:
      return 8;
  }
}

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

}  // namespace

// Reads the file front to back. Positions in messages are byte offsets into the file.
class GgufParser {
 public:
  GgufParser(std::string_view name, const uint8_t* data, uint64_t size)
      : name_(name), data_(data), size_(size) {}

  Status parse(GgufFile* f);

 private:
  uint64_t left() const { return size_ - pos_; }

  template <typename... Args>
  Status error(fmt::format_string<Args...> format, Args&&... args) const {
    return Status::data_loss(
        fmt::format("{}: {}", name_, fmt::format(format, std::forward<Args>(args)...)));
  }

  Status need(uint64_t n, std::string_view what) const {
    if (n > left()) {
      return error("truncated {} at byte {} ({} bytes, limit {} left)", what, pos_, n, left());
    }
    return Status::ok();
  }

  template <typename T>
  Status read(T* out, std::string_view what) {
    SLUICE_RETURN_IF_ERROR(need(sizeof(T), what));
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::ok();
  }

  Status charge(uint64_t count, uint64_t each, std::string_view what) {
    auto bytes = checked_mul(count, each);
    auto total = bytes ? checked_add(metadata_bytes_, *bytes) : std::nullopt;
    if (!total || *total > kGgufMaxMetadataBytes) {
      return Status::resource_exhausted(
          fmt::format("{}: decoded metadata too large at {} ({} elements, limit {} bytes in all)",
                      name_, what, count, kGgufMaxMetadataBytes));
    }
    metadata_bytes_ = *total;
    return Status::ok();
  }

  Status read_string(std::string* out, std::string_view what, uint64_t max_len) {
    uint64_t len = 0;
    uint64_t at = pos_;
    SLUICE_RETURN_IF_ERROR(read(&len, what));
    if (len > max_len)
      return error("{} length at byte {} too large ({}, limit {})", what, at, len, max_len);
    if (len > left()) {
      return error("{} length at byte {} exceeds the bytes left ({}, limit {})", what, at, len,
                   left());
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return Status::ok();
  }

  // Reads a T and stores it widened to Stored (uint64_t, int64_t or double).
  template <typename T, typename Stored>
  Status read_scalar(GgufValue* out, std::string_view what) {
    T x{};
    SLUICE_RETURN_IF_ERROR(read(&x, what));
    out->v = static_cast<Stored>(x);
    return Status::ok();
  }

  Status read_value(GgufType type, GgufValue* out, int depth);
  Status read_array(GgufArray* arr, int depth);
  Status read_kv(GgufFile* f, uint64_t index);
  Status read_tensor_info(GgufFile* f, uint64_t index, GgufTensorInfo* info);
  Status read_alignment(GgufFile* f);
  Status place_tensors(GgufFile* f);

  std::string_view name_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t metadata_bytes_ = 0;
};

Status GgufParser::read_value(GgufType type, GgufValue* out, int depth) {
  out->type = type;
  switch (type) {
    case GgufType::kU8:
      return read_scalar<uint8_t, uint64_t>(out, "u8 value");
    case GgufType::kI8:
      return read_scalar<int8_t, int64_t>(out, "i8 value");
    case GgufType::kU16:
      return read_scalar<uint16_t, uint64_t>(out, "u16 value");
    case GgufType::kI16:
      return read_scalar<int16_t, int64_t>(out, "i16 value");
    case GgufType::kU32:
      return read_scalar<uint32_t, uint64_t>(out, "u32 value");
    case GgufType::kI32:
      return read_scalar<int32_t, int64_t>(out, "i32 value");
    case GgufType::kU64:
      return read_scalar<uint64_t, uint64_t>(out, "u64 value");
    case GgufType::kI64:
      return read_scalar<int64_t, int64_t>(out, "i64 value");
    case GgufType::kF32:
      return read_scalar<float, double>(out, "f32 value");
    case GgufType::kF64:
      return read_scalar<double, double>(out, "f64 value");
    case GgufType::kBool: {
      uint8_t x = 0;
      SLUICE_RETURN_IF_ERROR(read(&x, "bool value"));
      if (x > 1) return error("bool value at byte {} is not 0 or 1 ({}, limit 1)", pos_ - 1, x);
      out->v = x != 0;
      break;
    }
    case GgufType::kString: {
      std::string s;
      SLUICE_RETURN_IF_ERROR(read_string(&s, "string value", kGgufMaxStringBytes));
      SLUICE_RETURN_IF_ERROR(charge(1, s.size() + sizeof(std::string), "string value"));
      out->v = std::move(s);
      break;
    }
    case GgufType::kArray: {
      auto arr = std::make_shared<GgufArray>();
      SLUICE_RETURN_IF_ERROR(read_array(arr.get(), depth + 1));
      out->v = std::move(arr);
      break;
    }
  }
  return Status::ok();
}

Status GgufParser::read_array(GgufArray* arr, int depth) {
  if (depth > kGgufMaxArrayDepth) {
    return Status::unimplemented(
        fmt::format("{}: arrays nested too deeply at byte {} ({}, limit {})", name_, pos_, depth,
                    kGgufMaxArrayDepth));
  }
  uint32_t elem_type = 0;
  uint64_t at = pos_;
  SLUICE_RETURN_IF_ERROR(read(&elem_type, "array element type"));
  if (!valid_value_type(elem_type)) {
    return error("unknown array element type at byte {} ({}, limit {})", at, elem_type,
                 static_cast<uint32_t>(GgufType::kF64));
  }
  arr->elem_type = static_cast<GgufType>(elem_type);
  uint64_t count = 0;
  at = pos_;
  SLUICE_RETURN_IF_ERROR(read(&count, "array count"));
  uint64_t fits = left() / min_encoded_size(arr->elem_type);
  if (count > fits) {
    return error("array count at byte {} exceeds what the bytes left can hold ({}, limit {})", at,
                 count, fits);
  }
  SLUICE_RETURN_IF_ERROR(charge(count, decoded_size(arr->elem_type), "array"));
  arr->count = count;
  GgufValue scratch;
  switch (arr->elem_type) {
    case GgufType::kString:
      arr->strings.resize(count);
      for (uint64_t i = 0; i < count; ++i) {
        SLUICE_RETURN_IF_ERROR(read_string(&arr->strings[i], "array string", kGgufMaxStringBytes));
        SLUICE_RETURN_IF_ERROR(charge(1, arr->strings[i].size(), "array string"));
      }
      break;
    case GgufType::kArray:
      arr->arrays.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        auto inner = std::make_shared<GgufArray>();
        SLUICE_RETURN_IF_ERROR(read_array(inner.get(), depth + 1));
        arr->arrays.push_back(std::move(inner));
      }
      break;
    case GgufType::kBool:
      arr->bools.resize(count);
      for (uint64_t i = 0; i < count; ++i) {
        SLUICE_RETURN_IF_ERROR(read_value(GgufType::kBool, &scratch, depth));
        arr->bools[i] = std::get<bool>(scratch.v) ? 1 : 0;
      }
      break;
    case GgufType::kF32:
    case GgufType::kF64:
      arr->floats.resize(count);
      for (uint64_t i = 0; i < count; ++i) {
        SLUICE_RETURN_IF_ERROR(read_value(arr->elem_type, &scratch, depth));
        arr->floats[i] = std::get<double>(scratch.v);
      }
      break;
    default:  // integers
      arr->ints.resize(count);
      for (uint64_t i = 0; i < count; ++i) {
        SLUICE_RETURN_IF_ERROR(read_value(arr->elem_type, &scratch, depth));
        if (const auto* u = std::get_if<uint64_t>(&scratch.v)) {
          arr->ints[i] = static_cast<int64_t>(*u);
        } else {
          arr->ints[i] = std::get<int64_t>(scratch.v);
        }
      }
      break;
  }
  return Status::ok();
}

Status GgufParser::read_kv(GgufFile* f, uint64_t index) {
  std::string key;
  uint64_t key_at = pos_;
  SLUICE_RETURN_IF_ERROR(
      read_string(&key, fmt::format("metadata key {}", index), kGgufMaxKeyBytes));
  if (key.empty()) return error("metadata key {} at byte {} is empty (0, limit 1)", index, key_at);
  uint32_t type = 0;
  uint64_t at = pos_;
  SLUICE_RETURN_IF_ERROR(read(&type, "metadata value type"));
  if (!valid_value_type(type)) {
    return error("metadata key '{}' has unknown value type at byte {} ({}, limit {})",
                 printable(key), at, type, static_cast<uint32_t>(GgufType::kF64));
  }
  SLUICE_RETURN_IF_ERROR(charge(1, key.size() + sizeof(GgufValue) + 64, "metadata key"));
  GgufValue value;
  Status st = read_value(static_cast<GgufType>(type), &value, 0);
  if (!st.is_ok())
    return Status(st.code(),
                  fmt::format("{} (in metadata key '{}')", st.message(), printable(key)));
  if (f->metadata_.count(key)) {
    return error("duplicate metadata key '{}' at byte {} ({} copies, limit 1)", printable(key),
                 key_at, 2);
  }
  f->metadata_.emplace(std::move(key), std::move(value));
  return Status::ok();
}

Status GgufParser::read_alignment(GgufFile* f) {
  const GgufValue* v = f->find("general.alignment");
  if (!v) return Status::ok();
  if (v->type != GgufType::kU32) {
    return error("general.alignment has type {}, expected u32", gguf_type_name(v->type));
  }
  uint64_t a = std::get<uint64_t>(v->v);
  if (a == 0 || (a & (a - 1)) != 0) {
    return error("general.alignment is not a nonzero power of two ({}, limit {})", a,
                 kGgufMaxAlignment);
  }
  if (a > kGgufMaxAlignment) {
    return error("general.alignment too large ({}, limit {})", a, kGgufMaxAlignment);
  }
  f->alignment_ = a;
  return Status::ok();
}

Status GgufParser::read_tensor_info(GgufFile* f, uint64_t index, GgufTensorInfo* info) {
  uint64_t at = pos_;
  SLUICE_RETURN_IF_ERROR(
      read_string(&info->name, fmt::format("tensor {} name", index), kGgufMaxTensorNameBytes));
  if (info->name.empty())
    return error("tensor {} at byte {} has an empty name (0, limit 1)", index, at);
  const std::string name = printable(info->name);  // for messages
  uint32_t n_dims = 0;
  SLUICE_RETURN_IF_ERROR(read(&n_dims, "tensor n_dims"));
  if (n_dims < 1 || n_dims > kGgufMaxDims) {
    return error("tensor '{}' has bad n_dims ({}, limit 1..{})", name, n_dims, kGgufMaxDims);
  }
  SLUICE_RETURN_IF_ERROR(need(uint64_t{n_dims} * 8, "tensor dims"));
  info->ne.resize(n_dims);
  uint64_t num_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne = 0;
    SLUICE_RETURN_IF_ERROR(read(&ne, "tensor dim"));
    if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return error("tensor '{}' dim {} out of range ({}, limit 1..{})", name, d, ne,
                   std::numeric_limits<int64_t>::max());
    }
    info->ne[d] = ne;
    auto prod = checked_mul(num_elements, ne);
    if (!prod || *prod > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return error("tensor '{}' element count overflows at dim {} ({}, limit {})", name, d, ne,
                   std::numeric_limits<int64_t>::max());
    }
    num_elements = *prod;
  }
  info->num_elements = num_elements;
  uint32_t type_id = 0;
  SLUICE_RETURN_IF_ERROR(read(&type_id, "tensor type"));
  uint64_t block_elems = 0;
  uint64_t block_bytes = 0;
  if (!ggml_type_layout(type_id, &block_elems, &block_bytes)) {
    return Status::unimplemented(fmt::format(
        "{}: tensor '{}' has unsupported type {} ({}, supported: F32, F16, BF16, Q4_0, Q4_1, "
        "Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)",
        name_, name, ggml_type_name(static_cast<GgmlType>(type_id)), type_id));
  }
  info->type = static_cast<GgmlType>(type_id);
  if (info->ne[0] % block_elems != 0) {
    return error("tensor '{}' ne[0] is not a multiple of the {} block ({}, limit multiple of {})",
                 name, ggml_type_name(info->type), info->ne[0], block_elems);
  }
  // Bytes = (ne0 / block) * block_bytes * ne1 * ne2 * ne3, every step checked.
  std::optional<uint64_t> nbytes = checked_mul(info->ne[0] / block_elems, block_bytes);
  for (uint32_t d = 1; d < n_dims && nbytes; ++d) nbytes = checked_mul(*nbytes, info->ne[d]);
  if (!nbytes || *nbytes > size_) {
    return error("tensor '{}' byte size exceeds the file ({}, limit {})", name,
                 nbytes ? fmt::to_string(*nbytes) : std::string("overflow"), size_);
  }
  info->nbytes = *nbytes;
  SLUICE_RETURN_IF_ERROR(read(&info->offset, "tensor offset"));
  if (info->offset % f->alignment_ != 0) {
    return error("tensor '{}' offset is not aligned ({}, limit multiple of {})", name, info->offset,
                 f->alignment_);
  }
  if (f->tensor_index_.count(info->name)) {
    return error("duplicate tensor name '{}' ({} copies, limit 1)", name, 2);
  }
  f->tensor_index_.emplace(info->name, index);
  return Status::ok();
}

// Finds the data blob and checks that every tensor lies inside it without overlapping.
Status GgufParser::place_tensors(GgufFile* f) {
  auto data_start = checked_align_up(pos_, f->alignment_);
  if (!data_start) return error("data offset overflows ({}, limit {})", pos_, size_);
  f->data_offset_ = *data_start;
  if (f->tensors_.empty()) return Status::ok();  // a metadata-only file may end unpadded
  if (*data_start > size_) {
    return error("tensor data starts past the end of the file ({}, limit {})", *data_start, size_);
  }
  uint64_t blob_size = size_ - *data_start;
  for (auto& t : f->tensors_) {
    if (!range_within(t.offset, t.nbytes, blob_size)) {
      auto end = checked_add(t.offset, t.nbytes);
      return error("tensor '{}' at offset {} ends past the end of the data blob ({}, limit {})",
                   printable(t.name), t.offset,
                   end ? fmt::to_string(*end) : std::string("overflow"), blob_size);
    }
    t.data = data_ + *data_start + t.offset;
  }
  std::vector<size_t> order(f->tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f->tensors_[a].offset < f->tensors_[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& prev = f->tensors_[order[i - 1]];
    const auto& cur = f->tensors_[order[i]];
    uint64_t prev_end = prev.offset + prev.nbytes;  // checked by range_within above
    if (prev_end > cur.offset) {
      return error("tensor '{}' at offset {} overlaps tensor '{}' ({}, limit {})",
                   printable(cur.name), cur.offset, printable(prev.name), prev_end, cur.offset);
    }
  }
  return Status::ok();
}

Status GgufParser::parse(GgufFile* f) {
  uint32_t magic = 0;
  SLUICE_RETURN_IF_ERROR(read(&magic, "magic"));
  if (magic != kGgufMagic) {
    return error("not a GGUF file: bad magic ({:#010x}, limit {:#010x})", magic, kGgufMagic);
  }
  uint32_t version = 0;
  SLUICE_RETURN_IF_ERROR(read(&version, "version"));
  if (version != 2 && version != 3) {
    std::string hint = (version & 0xffffu) == 0 && version != 0 ? " (big-endian file?)" : "";
    return Status::unimplemented(
        fmt::format("{}: unsupported GGUF version ({}, limit 2..3){}", name_, version, hint));
  }
  f->version_ = version;
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  SLUICE_RETURN_IF_ERROR(read(&n_tensors, "tensor count"));
  SLUICE_RETURN_IF_ERROR(read(&n_kv, "metadata count"));
  // A tensor info is at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 + 8 bytes; a
  // key/value pair at least 8 (key length) + 4 (type) + 1 (a u8 value).
  uint64_t max_tensors = std::min<uint64_t>(kGgufMaxTensors, left() / 32);
  if (n_tensors > max_tensors) {
    return error("tensor count too large ({}, limit {})", n_tensors, max_tensors);
  }
  uint64_t max_kv = std::min<uint64_t>(kGgufMaxKv, left() / 13);
  if (n_kv > max_kv) return error("metadata count too large ({}, limit {})", n_kv, max_kv);

  for (uint64_t i = 0; i < n_kv; ++i) SLUICE_RETURN_IF_ERROR(read_kv(f, i));
  SLUICE_RETURN_IF_ERROR(read_alignment(f));

  // Re-check against what is left now that the metadata is consumed.
  if (n_tensors > left() / 32) {
    return error("tensor count exceeds what the bytes left can hold ({}, limit {})", n_tensors,
                 left() / 32);
  }
  f->tensors_.resize(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    SLUICE_RETURN_IF_ERROR(read_tensor_info(f, i, &f->tensors_[i]));
  }
  return place_tensors(f);
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::parse(std::string_view name, const uint8_t* data,
                                                    uint64_t size,
                                                    std::shared_ptr<const void> keep_alive) {
  if (data == nullptr && size != 0) {
    return Status::invalid_argument(fmt::format("{}: null data with size {}", name, size));
  }
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = std::string(name);
  f->size_ = size;
  GgufParser parser(name, data, size);
  SLUICE_RETURN_IF_ERROR(parser.parse(f.get()));
  f->keep_alive_ = std::move(keep_alive);
  return f;
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> mapped, MappedFile::open(path));
  const uint8_t* data = mapped->data();
  uint64_t size = mapped->size();
  return parse(path, data, size, std::move(mapped));
}

}  // namespace sluice::weights
