// Block dequantizers for the ggml types of gemma-models.md §3.5. Each one reproduces the
// reference's arithmetic exactly: the scale products are rounded to f32 first (d·sc, then
// ·q, then − dmin·m), which is why the expressions below are split the way they are.

#include "engine/weights/dequant.h"

#include <fmt/format.h>

#include <cstring>

#include "common/checked_math.h"
#include "common/half.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF  // an FMA would change the last bit against the reference
#endif

namespace sluice::weights {

namespace {

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Q8_0: d@0, int8 qs[32]@2.
void block_q8_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// Q4_0: d@0, qs[16]@2; low nibbles are elements 0..15, high nibbles 16..31.
void block_q4_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
    y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

// Q4_1: d@0, m@2, qs[16]@4.
void block_q4_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    const float lo = d * static_cast<float>(qs[j] & 0x0F);
    const float hi = d * static_cast<float>(qs[j] >> 4);
    y[j] = lo + m;
    y[j + 16] = hi + m;
  }
}

// Q5_0: d@0, qh (u32)@2, qs[16]@6; bit j of qh is the fifth bit of element j.
void block_q5_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint32_t qh = load_u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int q0 = static_cast<int>((qs[j] & 0x0F) | (((qh >> j) & 1u) << 4)) - 16;
    const int q1 = static_cast<int>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
    y[j] = d * static_cast<float>(q0);
    y[j + 16] = d * static_cast<float>(q1);
  }
}

// Q5_1: d@0, m@2, qh (u32)@4, qs[16]@8.
void block_q5_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint32_t qh = load_u32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const uint32_t q0 = (qs[j] & 0x0Fu) | (((qh >> j) & 1u) << 4);
    const uint32_t q1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4);
    const float lo = d * static_cast<float>(q0);
    const float hi = d * static_cast<float>(q1);
    y[j] = lo + m;
    y[j + 16] = hi + m;
  }
}

// The 6-bit scale and min of sub-block s (0..7) from the 12 packed bytes of Q4_K / Q5_K.
inline void k_scale_min(const uint8_t* scales, int s, uint8_t* sc, uint8_t* mn) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *mn = scales[s + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[s + 4] & 0x0F) | ((scales[s - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((scales[s + 4] >> 4) | ((scales[s] >> 6) << 4));
  }
}

// Q4_K: d@0, dmin@2, scales[12]@4, qs[128]@16; 8 sub-blocks of 32.
// Q5_K: d@0, dmin@2, scales[12]@4, qh[32]@16, qs[128]@48; bit s of qh[l] is the fifth
// bit of element l of sub-block s. One body serves both (qh == nullptr for Q4_K).
void block_k_4or5(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = load_f16(b);
  const float dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  for (int c = 0; c < 4; ++c) {
    uint8_t sc0, mn0, sc1, mn1;
    k_scale_min(scales, 2 * c, &sc0, &mn0);
    k_scale_min(scales, 2 * c + 1, &sc1, &mn1);
    const float d0 = d * static_cast<float>(sc0);
    const float m0 = dmin * static_cast<float>(mn0);
    const float d1 = d * static_cast<float>(sc1);
    const float m1 = dmin * static_cast<float>(mn1);
    for (int l = 0; l < 32; ++l) {
      uint32_t q0 = qs[32 * c + l] & 0x0Fu;
      uint32_t q1 = qs[32 * c + l] >> 4;
      if (qh != nullptr) {
        q0 |= ((qh[l] >> (2 * c)) & 1u) << 4;
        q1 |= ((qh[l] >> (2 * c + 1)) & 1u) << 4;
      }
      const float p0 = d0 * static_cast<float>(q0);
      const float p1 = d1 * static_cast<float>(q1);
      y[64 * c + l] = p0 - m0;
      y[64 * c + 32 + l] = p1 - m1;
    }
  }
}

void block_q4_k(const uint8_t* b, float* y) { block_k_4or5(b, nullptr, b + 16, y); }
void block_q5_k(const uint8_t* b, float* y) { block_k_4or5(b, b + 16, b + 48, y); }

// Q6_K: ql[128]@0, qh[64]@128, int8 scales[16]@192, d@208; element k uses scales[k/16].
void block_q6_k(const uint8_t* b, float* y) {
  const float d = load_f16(b + 208);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b + 64 * h;
    const uint8_t* qh = b + 128 + 32 * h;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * h);
    float* out = y + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = static_cast<int>((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32;
      const int q2 = static_cast<int>((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = static_cast<int>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = static_cast<int>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      out[l] = (d * static_cast<float>(sc[is])) * static_cast<float>(q1);
      out[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
      out[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
      out[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
    }
  }
}

using BlockFn = void (*)(const uint8_t*, float*);

BlockFn block_fn(GgmlType t) {
  switch (t) {
    case GgmlType::kQ4_0:
      return block_q4_0;
    case GgmlType::kQ4_1:
      return block_q4_1;
    case GgmlType::kQ5_0:
      return block_q5_0;
    case GgmlType::kQ5_1:
      return block_q5_1;
    case GgmlType::kQ8_0:
      return block_q8_0;
    case GgmlType::kQ4_K:
      return block_q4_k;
    case GgmlType::kQ5_K:
      return block_q5_k;
    case GgmlType::kQ6_K:
      return block_q6_k;
    default:
      return nullptr;
  }
}

}  // namespace

void convert_f16_to_f32(const uint8_t* src, uint64_t n, float* dst) {
  for (uint64_t i = 0; i < n; ++i) dst[i] = load_f16(src + 2 * i);
}

void convert_bf16_to_f32(const uint8_t* src, uint64_t n, float* dst) {
  for (uint64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = bf16_to_f32(h);
  }
}

Status dequantize(GgmlType type, const uint8_t* src, uint64_t num_elements, float* dst) {
  uint64_t block_elems = 0;
  uint64_t block_bytes = 0;
  if (!ggml_type_layout(static_cast<uint32_t>(type), &block_elems, &block_bytes)) {
    return Status::unimplemented(fmt::format("dequantize: unsupported ggml type {} ({})",
                                             ggml_type_name(type), static_cast<uint32_t>(type)));
  }
  if (num_elements % block_elems != 0) {
    return Status::invalid_argument(
        fmt::format("dequantize: {} elements is not a whole number of {} blocks ({}, limit "
                    "multiple of {})",
                    num_elements, ggml_type_name(type), num_elements, block_elems));
  }
  switch (type) {
    case GgmlType::kF32:
      if (num_elements) std::memcpy(dst, src, num_elements * 4);
      return Status::ok();
    case GgmlType::kF16:
      convert_f16_to_f32(src, num_elements, dst);
      return Status::ok();
    case GgmlType::kBF16:
      convert_bf16_to_f32(src, num_elements, dst);
      return Status::ok();
    default:
      break;
  }
  BlockFn fn = block_fn(type);
  const uint64_t num_blocks = num_elements / block_elems;
  for (uint64_t i = 0; i < num_blocks; ++i) fn(src + i * block_bytes, dst + i * block_elems);
  return Status::ok();
}

Status dequantize_rows(const GgufTensorInfo& tensor, uint64_t row_begin, uint64_t row_end,
                       float* dst) {
  if (tensor.ne.empty() || tensor.data == nullptr) {
    return Status::invalid_argument(fmt::format("tensor '{}' has no data", tensor.name));
  }
  const uint64_t ne0 = tensor.ne[0];
  const uint64_t num_rows = tensor.num_elements / ne0;
  if (row_begin > row_end || row_end > num_rows) {
    return Status::out_of_range(
        fmt::format("tensor '{}': rows [{}, {}) out of range ({}, limit {})", tensor.name,
                    row_begin, row_end, row_end, num_rows));
  }
  auto row_bytes = ggml_row_bytes(tensor.type, ne0);
  if (!row_bytes) {
    return Status::invalid_argument(fmt::format("tensor '{}': bad row of {} elements for {}",
                                                tensor.name, ne0, ggml_type_name(tensor.type)));
  }
  // The tensor was validated at parse time, so these products fit in its own byte size.
  return dequantize(tensor.type, tensor.data + row_begin * *row_bytes, (row_end - row_begin) * ne0,
                    dst);
}

}  // namespace sluice::weights
