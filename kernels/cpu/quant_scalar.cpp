// The plain C++ quantized matmul kernels (quant_kernels.h): the reference formulation that
// the SIMD units reproduce, and the path for CPUs without AVX2.

#include <cstring>

#include "common/half.h"
#include "kernels/cpu/quant_kernels.h"

namespace sluice::kernels::cpu {
namespace {

float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// One decoded weight row: codes q[K], factors f (one per 32 elements, or per 16 for Q6_K)
// and offsets o[K/16] (all zero for Q8_0).
struct Decoded {
  uint8_t* q;
  float* f;
  float* o;
};

void set_offsets(float* o, int blk32, float value) {
  o[2 * blk32] = value;
  o[2 * blk32 + 1] = value;
}

// 6-bit scale and min of sub-block s of a Q4_K/Q5_K super-block (as dequant.cpp).
void k_scale_min(const uint8_t* scales, int s, int* sc, int* mn) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *mn = scales[s + 4] & 63;
  } else {
    *sc = (scales[s + 4] & 0x0F) | ((scales[s - 4] >> 6) << 4);
    *mn = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
  }
}

// Decodes block `b` (32 or 256 elements) of `type` at `src` into `d` at block index b.
void decode_block(QuantType type, const uint8_t* src, int64_t b, const Decoded& d) {
  switch (type) {
    case QuantType::kQ4_0:
    case QuantType::kQ4_1:
    case QuantType::kQ5_0:
    case QuantType::kQ5_1: {
      const bool has_min = type == QuantType::kQ4_1 || type == QuantType::kQ5_1;
      const bool five = type == QuantType::kQ5_0 || type == QuantType::kQ5_1;
      const float scale = load_f16(src);
      const float min = has_min ? load_f16(src + 2) : 0.0f;
      const uint8_t* p = src + (has_min ? 4 : 2);
      uint32_t qh = 0;
      if (five) {
        qh = load_u32(p);
        p += 4;
      }
      uint8_t* q = d.q + 32 * b;
      for (int j = 0; j < 16; ++j) {
        q[j] = static_cast<uint8_t>((p[j] & 0x0F) | (five ? ((qh >> j) & 1u) << 4 : 0));
        q[j + 16] = static_cast<uint8_t>((p[j] >> 4) | (five ? ((qh >> (j + 16)) & 1u) << 4 : 0));
      }
      d.f[b] = scale;
      // (q - 8)·d, (q - 16)·d, q·d + m: the zero point (or -m) is the offset.
      set_offsets(d.o, static_cast<int>(b), has_min ? -min : (five ? 16.0f : 8.0f) * scale);
      return;
    }
    case QuantType::kQ8_0:
      d.f[b] = load_f16(src);
      std::memcpy(d.q + 32 * b, src + 2, 32);
      set_offsets(d.o, static_cast<int>(b), 0.0f);
      return;
    case QuantType::kQ4_K:
    case QuantType::kQ5_K: {
      const bool five = type == QuantType::kQ5_K;
      const float scale = load_f16(src);
      const float dmin = load_f16(src + 2);
      const uint8_t* scales = src + 4;
      const uint8_t* qh = src + 16;
      const uint8_t* qs = src + (five ? 48 : 16);
      for (int s = 0; s < 8; ++s) {
        int sc, mn;
        k_scale_min(scales, s, &sc, &mn);
        const int64_t blk = 8 * b + s;
        d.f[blk] = scale * static_cast<float>(sc);
        set_offsets(d.o, static_cast<int>(blk), dmin * static_cast<float>(mn));
        uint8_t* q = d.q + 32 * blk;
        const uint8_t* bytes = qs + 32 * (s / 2);
        for (int l = 0; l < 32; ++l) {
          uint32_t v = (s & 1) ? bytes[l] >> 4 : bytes[l] & 0x0F;
          if (five) v |= ((qh[l] >> s) & 1u) << 4;
          q[l] = static_cast<uint8_t>(v);
        }
      }
      return;
    }
    case QuantType::kQ6_K: {
      const float scale = load_f16(src + 208);
      const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = src + 64 * h;
        const uint8_t* qh = src + 128 + 32 * h;
        for (int c = 0; c < 4; ++c) {
          const int64_t blk = 8 * b + 4 * h + c;
          uint8_t* q = d.q + 32 * blk;
          for (int l = 0; l < 32; ++l) {
            const uint8_t lo = ql[l + 32 * (c & 1)];
            const uint32_t nib = c < 2 ? lo & 0x0F : lo >> 4;
            q[l] = static_cast<uint8_t>(nib | (((qh[l] >> (2 * c)) & 3u) << 4));
          }
          for (int g = 0; g < 2; ++g) {
            const float fg = scale * static_cast<float>(sc[8 * h + 2 * c + g]);
            d.f[2 * blk + g] = fg;
            d.o[2 * blk + g] = 32.0f * fg;
          }
        }
      }
      return;
    }
  }
}

int block_elems(QuantType t) {
  return t == QuantType::kQ4_K || t == QuantType::kQ5_K || t == QuantType::kQ6_K ? 256 : 32;
}

// Decodes whole weight rows of `type` into `work` (codes, then factors, then offsets: the
// Decoded layout), one source block at a time.
struct RowDecoder {
  RowDecoder(QuantType type, const uint8_t* w, int64_t row_bytes, int64_t K, void* work)
      : type(type),
        w(w),
        row_bytes(row_bytes),
        nsrc(K / block_elems(type)),
        per16(type == QuantType::kQ6_K),
        is_signed(type == QuantType::kQ8_0),
        d{static_cast<uint8_t*>(work), reinterpret_cast<float*>(static_cast<uint8_t*>(work) + K),
          reinterpret_cast<float*>(static_cast<uint8_t*>(work) + K) + K / 16} {}
  void decode(int64_t n) const {
    const uint8_t* row = w + n * row_bytes;
    const int64_t src_block_bytes = row_bytes / nsrc;
    for (int64_t b = 0; b < nsrc; ++b) decode_block(type, row + b * src_block_bytes, b, d);
  }
  QuantType type;
  const uint8_t* w;
  int64_t row_bytes, nsrc;
  bool per16, is_signed;
  Decoded d;
};

void gemm(QuantType type, const uint8_t* w, int64_t row_bytes, int64_t K, const int8_t* aq,
          const float* ad, const float* as16, int64_t M, int64_t n_begin, int64_t n_end, float* out,
          int64_t ldo, void* work) {
  const int64_t nb = K / 32;
  const int64_t ng = K / 16;
  const RowDecoder rows(type, w, row_bytes, K, work);
  const Decoded& d = rows.d;
  for (int64_t n = n_begin; n < n_end; ++n) {
    rows.decode(n);
    for (int64_t m = 0; m < M; ++m) {
      const int8_t* a = aq + m * K;
      const float* da = ad + m * nb;
      const float* s16 = as16 + m * ng;
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t isum[2] = {0, 0};
        for (int l = 0; l < 32; ++l) {
          const int32_t q = rows.is_signed ? static_cast<int8_t>(d.q[32 * b + l]) : d.q[32 * b + l];
          isum[l / 16] += q * a[32 * b + l];
        }
        if (rows.per16) {
          acc += da[b] * (d.f[2 * b] * static_cast<float>(isum[0]) +
                          d.f[2 * b + 1] * static_cast<float>(isum[1]));
        } else {
          acc += (da[b] * d.f[b]) * static_cast<float>(isum[0] + isum[1]);
        }
      }
      float off = 0.0f;
      if (!rows.is_signed) {
        for (int64_t g = 0; g < ng; ++g) off += d.o[g] * s16[g];
      }
      out[m * ldo + n] = acc - off;
    }
  }
}

void dequantize_rows(QuantType type, const uint8_t* w, int64_t row_bytes, int64_t K,
                     int64_t n_begin, int64_t n_end, float* out, void* work) {
  const RowDecoder rows(type, w, row_bytes, K, work);
  const Decoded& d = rows.d;
  for (int64_t n = n_begin; n < n_end; ++n) {
    rows.decode(n);
    float* y = out + (n - n_begin) * K;
    for (int64_t k = 0; k < K; ++k) {
      const float q = rows.is_signed ? static_cast<float>(static_cast<int8_t>(d.q[k]))
                                     : static_cast<float>(d.q[k]);
      const float f = rows.per16 ? d.f[k / 16] : d.f[k / 32];
      y[k] = f * q - (rows.is_signed ? 0.0f : d.o[k / 16]);
    }
  }
}

}  // namespace

const QuantKernels kQuantScalarKernels = {"scalar", gemm, dequantize_rows, &kScalarKernels};

}  // namespace sluice::kernels::cpu
