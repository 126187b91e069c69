#pragma once
// Test-only GGUF writer: builds valid files in memory, and malformed ones through explicit
// overrides of each header field (counts, version, magic, n_dims, offsets, type ids).

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sluice::weights::testing {

using Bytes = std::vector<uint8_t>;

inline void put_raw(Bytes& b, const void* p, size_t n) {
  const auto* c = static_cast<const uint8_t*>(p);
  b.insert(b.end(), c, c + n);
}
template <typename T>
void put(Bytes& b, T v) {
  put_raw(b, &v, sizeof(T));
}
inline void put_str(Bytes& b, const std::string& s) {
  put<uint64_t>(b, s.size());
  put_raw(b, s.data(), s.size());
}

// Value payloads (without the u32 type code) for the key/value section.
inline Bytes str_payload(const std::string& s) {
  Bytes b;
  put_str(b, s);
  return b;
}
template <typename T>
Bytes scalar_payload(T v) {
  Bytes b;
  put(b, v);
  return b;
}
// An array of `count` elements of `elem_type` whose encoded elements are `elems`.
inline Bytes array_payload(uint32_t elem_type, uint64_t count, const Bytes& elems) {
  Bytes b;
  put<uint32_t>(b, elem_type);
  put<uint64_t>(b, count);
  put_raw(b, elems.data(), elems.size());
  return b;
}
template <typename T>
Bytes array_of(uint32_t elem_type, const std::vector<T>& values) {
  Bytes elems;
  for (const T& v : values) put(elems, v);
  return array_payload(elem_type, values.size(), elems);
}
inline Bytes array_of_strings(const std::vector<std::string>& values) {
  Bytes elems;
  for (const auto& s : values) put_str(elems, s);
  return array_payload(8, values.size(), elems);
}

struct TensorSpec {
  TensorSpec(std::string name_, std::vector<uint64_t> ne_, uint32_t type_id_, Bytes data_ = {},
             std::optional<uint64_t> offset_ = std::nullopt)
      : name(std::move(name_)),
        ne(std::move(ne_)),
        type_id(type_id_),
        data(std::move(data_)),
        offset(offset_) {}
  std::string name;
  std::vector<uint64_t> ne;        // innermost first
  uint32_t type_id = 0;            // ggml type id
  Bytes data;                      // written at the tensor's offset in the blob
  std::optional<uint64_t> offset;  // default: next aligned offset after the previous tensor
  std::optional<uint32_t> n_dims;  // default: ne.size()
};

class GgufBuilder {
 public:
  uint32_t magic = 0x46554747;  // "GGUF"
  uint32_t version = 3;
  std::optional<uint64_t> n_tensors;  // override of the header count
  std::optional<uint64_t> n_kv;       // override of the header count
  uint64_t alignment = 32;            // used for padding and default offsets only
  bool pad_data = true;               // pad the end of the infos to `alignment`

  GgufBuilder& kv(const std::string& key, uint32_t type, const Bytes& payload) {
    put_str(kvs_, key);
    put<uint32_t>(kvs_, type);
    put_raw(kvs_, payload.data(), payload.size());
    ++num_kv_;
    return *this;
  }
  GgufBuilder& kv_u32(const std::string& key, uint32_t v) { return kv(key, 4, scalar_payload(v)); }
  GgufBuilder& kv_string(const std::string& key, const std::string& v) {
    return kv(key, 8, str_payload(v));
  }
  // Adds the general.alignment key (u32) and uses it for the layout.
  GgufBuilder& set_alignment(uint32_t a) {
    alignment = a;
    return kv_u32("general.alignment", a);
  }
  GgufBuilder& tensor(TensorSpec spec) {
    tensors_.push_back(std::move(spec));
    return *this;
  }

  // Position of the first tensor info in the last build() output.
  size_t infos_pos() const { return infos_pos_; }
  size_t data_pos() const { return data_pos_; }

  Bytes build() {
    Bytes out;
    put<uint32_t>(out, magic);
    put<uint32_t>(out, version);
    put<uint64_t>(out, n_tensors.value_or(tensors_.size()));
    put<uint64_t>(out, n_kv.value_or(num_kv_));
    put_raw(out, kvs_.data(), kvs_.size());
    infos_pos_ = out.size();
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    const uint64_t a = alignment ? alignment : 1;
    for (const auto& t : tensors_) {
      uint64_t off = t.offset.value_or(next);
      offsets.push_back(off);
      if (!t.offset) next = (off + t.data.size() + a - 1) / a * a;
      put_str(out, t.name);
      put<uint32_t>(out, t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
      for (uint64_t n : t.ne) put<uint64_t>(out, n);
      put<uint32_t>(out, t.type_id);
      put<uint64_t>(out, off);
    }
    if (pad_data) {
      while (out.size() % a) out.push_back(0);
    }
    data_pos_ = out.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const Bytes& d = tensors_[i].data;
      if (d.empty()) continue;
      size_t at = data_pos_ + offsets[i];
      if (out.size() < at + d.size()) out.resize(at + d.size(), 0);
      std::memcpy(out.data() + at, d.data(), d.size());
    }
    return out;
  }

 private:
  Bytes kvs_;
  uint64_t num_kv_ = 0;
  std::vector<TensorSpec> tensors_;
  size_t infos_pos_ = 0;
  size_t data_pos_ = 0;
};

}  // namespace sluice::weights::testing
