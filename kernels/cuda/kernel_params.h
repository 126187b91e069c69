#pragma once
// Parameter blocks of the CUDA kernels, and the functions that launch them. Internal to
// kernels/cuda: callers use cuda_ops.h, whose launchers validate kernels::Tensor views and
// fill these blocks. Each block is plain data, passed by value to its kernel as one
// `const __grid_constant__` parameter (no copy to device memory, no per-launch allocation).
// Nothing here needs a CUDA header, so the host .cpp files and the .cu files share it.

#include <cstdint>

namespace sluice::kernels::cuda {

// Element types the kernels read and write. Arithmetic is always f32.
enum class ElemType : uint8_t { kF32 = 0, kBF16 = 1 };

// One tensor seen as `rows` rows of `dim` contiguous elements. Row r starts at element
//   (r / inner_rows) * outer_stride + (r % inner_rows) * inner_stride
// of `data`, where inner_rows is shared by every tensor of a launch (the B of a
// [A, B, D] view; 1 for a [R, D] view, with inner_stride 0). Strides are in elements.
struct RowView {
  void* data = nullptr;
  int64_t outer_stride = 0;
  int64_t inner_stride = 0;
  ElemType type = ElemType::kF32;
};

enum class NormWeight : uint8_t {
  kNone,     // y = x * inv_rms                 (Gemma 4's V-norm)
  kPlain,    // y = x * inv_rms * w             (Gemma 4; Gemma 3 GGUFs, which store w + 1)
  kOnePlus,  // y = x * inv_rms * (1 + w)       (Gemma 3 in HF form)
};

enum class NormMode : uint8_t {
  kNorm,         // out = norm(in; weight)
  kAdd,          // residual += norm(in; weight)
  kAddThenNorm,  // residual += norm(in; weight); out = norm(residual; out_weight)
};

// Row-wise RMS norm over `dim`, inv_rms = rsqrt(mean(x^2) + eps), one CUDA block per row.
struct RmsNormParams {
  RowView in, out, residual;         // out unused in kAdd; residual unused in kNorm
  RowView out2;                      // kNorm only, optional: out2 = norm(in; out_weight)
  const void* weight = nullptr;      // [dim], contiguous; null when weight_form == kNone
  const void* out_weight = nullptr;  // [dim], contiguous; kAddThenNorm, or kNorm with out2
  ElemType weight_type = ElemType::kF32;
  ElemType out_weight_type = ElemType::kF32;
  NormWeight weight_form = NormWeight::kNone;
  NormWeight out_weight_form = NormWeight::kNone;
  NormMode mode = NormMode::kNorm;
  // True when every row start and weight pointer is 16-byte aligned: then each thread
  // moves 8 elements per step with 16-byte accesses, and only the last dim % 8 go scalar.
  bool vectorized = false;
  int32_t dim = 0;
  int64_t rows = 0;        // <= INT32_MAX (one block per row)
  int64_t inner_rows = 1;  // >= 1
  float eps = 1e-6f;
};

// Launches the norm on `stream` (a cudaStream_t; nullptr = legacy default stream).
// rows == 0 launches nothing. Aborts (SLUICE_CUDA_CHECK) if the launch fails.
void launch_rms_norm(const RmsNormParams& p, void* stream);

// A norm weight as the kernels read it: [dim] contiguous, in its form (data null: kNone).
struct NormWeightRef {
  const void* data = nullptr;
  ElemType type = ElemType::kF32;
  NormWeight form = NormWeight::kNone;
};

// The end of a layer's branch (residual_tail in cuda_ops.h) over rows of [rows, dim], one
// CUDA block per row:
//   b = in2 ? norm(in; in_weight) + norm(in2; in2_weight) : in
//   residual = (residual + norm(b; weight)) * scale;  out = norm(residual; out_weight)
struct ResidualTailParams {
  RowView residual, in, in2, out;  // in2.data, out.data null when absent ([R, D] views)
  NormWeightRef weight, in_weight, in2_weight, out_weight;
  float scale = 1.0f;
  bool vectorized = false;  // every row start and weight 16-byte aligned
  int32_t dim = 0;
  int64_t rows = 0;  // <= INT32_MAX
  float eps = 1e-6f;
};
void launch_residual_tail(const ResidualTailParams& p, void* stream);

// The most rotated pairs one RoPE launch supports (head_dim up to 1024 with full rotary).
inline constexpr int kMaxRopePairs = 512;

// Rotate-half RoPE in place on x [tokens, heads, head_dim]: for i < num_pairs, dims
// (i, i + pair_offset) rotate by positions[t] * freq_scale * theta^(-2i / freq_dim).
struct RopeParams {
  void* x = nullptr;
  const int32_t* positions = nullptr;  // [tokens], device memory
  int64_t token_stride = 0;            // elements between tokens
  int64_t head_stride = 0;             // elements between heads
  ElemType type = ElemType::kF32;
  int32_t num_tokens = 0;  // <= INT32_MAX (grid x)
  int32_t num_heads = 0;   // heads_per_block * 65535 at most (grid y)
  int32_t heads_per_block = 1;
  int32_t num_pairs = 0;  // in [0, kMaxRopePairs]; 0 launches nothing
  int32_t pair_offset = 0;
  int32_t freq_dim = 0;
  float theta = 10000.0f;
  float freq_scale = 1.0f;
};

void launch_rope(const RopeParams& p, void* stream);

}  // namespace sluice::kernels::cuda
