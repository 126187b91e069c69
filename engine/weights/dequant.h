#pragma once
// Dequantization of ggml tensor data to f32: the reference path that every quantized
// weight can take (gemma-models.md §3.5). Results are bit-exact with ggml's reference
// dequantizers and with `gguf.quants.dequantize` (same operations in the same order, no
// fused multiply-add). Single-threaded; callers split large tensors by rows if they want.
//
// Source bytes may be unaligned (they come straight from a mapped file).

#include <cstdint>

#include "common/status.h"
#include "engine/weights/gguf.h"

namespace sluice::weights {

// Dequantizes `num_elements` elements of `type` from `src` into `dst` (num_elements floats).
// `num_elements` must be a whole number of blocks of `type` (INVALID_ARGUMENT otherwise);
// `src` must hold num_elements / block_elems * block_bytes bytes.
Status dequantize(GgmlType type, const uint8_t* src, uint64_t num_elements, float* dst);

// Rows [row_begin, row_end) of a GGUF tensor, a row being ne[0] contiguous elements (so a
// 2-D tensor [out, in] in row-major terms has `out` rows). Writes (row_end - row_begin) *
// ne[0] floats to `dst`. OUT_OF_RANGE when the range is not inside the tensor.
Status dequantize_rows(const GgufTensorInfo& tensor, uint64_t row_begin, uint64_t row_end,
                       float* dst);

// Element-wise conversions of `n` little-endian halves at `src` (any alignment).
void convert_f16_to_f32(const uint8_t* src, uint64_t n, float* dst);
void convert_bf16_to_f32(const uint8_t* src, uint64_t n, float* dst);

}  // namespace sluice::weights
