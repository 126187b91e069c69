#pragma once
// The CUDA backend's elementwise and row ops: embedding lookup, row gather, GeGLU, soft-cap,
// add, scale, dtype conversion and greedy argmax. They move activations between the GEMMs
// and norms of a layer (embedding -> residual stream; gate/up projection -> GeGLU -> down
// projection; final hidden rows -> logits -> soft-cap -> argmax or the sampler).
//
// Conventions are those of cuda_ops.h: tensors are kernels::Tensor views of device memory
// (Device::kCuda), `stream` is a cudaStream_t passed as void* (nullptr: the legacy default
// stream), launchers validate first and abort (SLUICE_CHECK) on a violation, check_*() gives
// the same verdict as a Status naming the op and the tensor, and no launcher allocates or
// synchronises. Each activation tensor is f32 or bf16 on its own; arithmetic is f32 and each
// output element is rounded once (nearest even). Rows: the last dimension contiguous, the
// row strides free. Where an output "may alias" an input, only the exact same view (same
// data, dtype, shape and strides) is allowed; any other overlap with an input is rejected.
//
// Speed: with every row start 16-byte aligned (pointer and row strides) the kernels move
// 16 bytes per access; otherwise they fall back to element accesses (same results, but a
// misaligned bf16 geglu measured 27% of copy bandwidth on an H200, against 65-88% aligned).
// Nothing here needs a CUDA header.

#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/kernel_params.h"  // ElemType, RowView
#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace sluice::kernels::cuda {

// out[t, :] = table[ids[t], :] * scale (EmbeddingArgs in kernels/ops.h). table [V, H] f32|bf16
// contiguous; ids [T] i32 contiguous in DEVICE memory; out [T, H] f32|bf16 (row stride free),
// disjoint from table and ids. Callers validate ids; an id outside [0, V) still never reads
// outside the table: its output row is written as zeros. Gemma 4's per-layer embeddings use
// the same op with their own table and scale. scale must be finite.
Status check_embedding(const EmbeddingArgs& args);
void embedding(const EmbeddingArgs& args, void* stream);

// out = gelu_tanh(gate) * up elementwise (GegluArgs in kernels/ops.h; gelu_tanh as
// kernels::gelu_tanh). gate, up, out [T, I] f32|bf16, row strides free: gate and up may be
// the two halves of one fused [T, 2I] projection. out may alias gate or up exactly.
Status check_geglu(const GegluArgs& args);
void geglu(const GegluArgs& args, void* stream);

// In place: x = cap * tanh(x / cap) (SoftcapArgs in kernels/ops.h). x [D], [R, D] or
// [A, B, D] f32|bf16, row strides free; cap finite and > 0.
Status check_softcap(const SoftcapArgs& args);
void softcap(const SoftcapArgs& args, void* stream);

// out = a + b (AddArgs in kernels/ops.h). out, a, b: the same shape, [D], [R, D] or
// [A, B, D], each f32|bf16, row strides free; out may alias a or b exactly.
Status check_add(const AddArgs& args);
void add(const AddArgs& args, void* stream);

// In place: x *= scale (ScaleArgs in kernels/ops.h), e.g. Gemma 4's per-layer layer_scalar on
// the residual stream. x [D], [R, D] or [A, B, D] f32|bf16, row strides free; scale finite.
Status check_scale(const ScaleArgs& args);
void scale(const ScaleArgs& args, void* stream);

// out = in with a dtype change (f32 <-> bf16, or the same dtype: a strided copy). out, in:
// the same shape, [D], [R, D] or [A, B, D], row strides free, disjoint (or the same view,
// which does nothing useful but is allowed).
struct ConvertArgs {
  Tensor out, in;
};
Status check_convert(const ConvertArgs& args);
void convert(const ConvertArgs& args, void* stream);

// out[i, :] = in[rows[i], :], e.g. the hidden rows of the tokens that get logits. in [T, D]
// and out [R, D], each f32|bf16 (a dtype change is allowed), row strides free, disjoint;
// rows [R] i32 contiguous in DEVICE memory. As in embedding, callers validate rows; a row
// index outside [0, T) writes a row of zeros and reads nothing.
struct GatherRowsArgs {
  Tensor out, in, rows;
};
Status check_gather_rows(const GatherRowsArgs& args);
void gather_rows(const GatherRowsArgs& args, void* stream);

// Greedy sampling: out[r] = the index of the largest logit of row r. logits [R, V] f32
// (row stride free, V >= 1); out [R] i32 contiguous in device memory, disjoint from logits.
// Ties go to the lowest index; NaN never wins (a row of only NaN gives 0); -inf can win (a
// row of only -inf gives 0). One CUDA block per row.
struct ArgmaxArgs {
  Tensor out, logits;
};
Status check_argmax(const ArgmaxArgs& args);
void argmax(const ArgmaxArgs& args, void* stream);

// ---- Launch parameter blocks: internal to kernels/cuda (elementwise.cpp fills them after
// validation, elementwise.cu launches them). Plain data, passed by value as one
// `const __grid_constant__` kernel parameter.

enum class ElementwiseOp : uint8_t {
  kScaleCopy,  // out = a * alpha (scale, convert; with row_ids: embedding, gather_rows)
  kSoftcap,    // out = alpha * tanh(a / alpha)
  kAdd,        // out = a + b
  kGeglu,      // out = gelu_tanh(a) * b
};

// An elementwise pass over `rows` x `dim` elements. Row r of out and b (and of a, without
// row_ids) follows RowView's [A, B, D] rule with inner_rows; with row_ids, row r of out reads
// row row_ids[r] of a (a's outer_stride apart), or zeros when that id is outside
// [0, num_a_rows).
struct ElementwiseParams {
  RowView out, a, b;                 // b: kAdd and kGeglu only
  const int32_t* row_ids = nullptr;  // [rows], device memory, or null
  int64_t num_a_rows = 0;            // with row_ids: rows of a
  int64_t rows = 0;                  // <= INT32_MAX (grid x)
  int64_t inner_rows = 1;            // >= 1
  int32_t dim = 0;                   // <= kMaxElementwiseDim
  float alpha = 1.0f;
  ElementwiseOp op = ElementwiseOp::kScaleCopy;
  // Every row start of every tensor is 16-byte aligned: one access per group of columns.
  bool vectorized = false;
  // Every tensor is bf16: one group of 8 columns (16 bytes) per thread, else 4 groups of 4.
  bool bf16_only = false;
};

// The widest rows launch_elementwise takes: 65535 column tiles of 256 threads x 8 columns.
inline constexpr int64_t kMaxElementwiseDim = 65535LL * 256 * 8;

// rows == 0 or dim == 0 launches nothing. Aborts (SLUICE_CUDA_CHECK) if the launch fails.
void launch_elementwise(const ElementwiseParams& p, void* stream);

// Row-wise argmax of f32 logits, one block per row.
struct ArgmaxParams {
  const float* logits = nullptr;
  int32_t* out = nullptr;
  int64_t row_stride = 0;   // elements
  int64_t rows = 0;         // <= INT32_MAX (grid x)
  int32_t dim = 0;          // >= 1
  bool vectorized = false;  // row starts 16-byte aligned: float4 loads
};

void launch_argmax(const ArgmaxParams& p, void* stream);

}  // namespace sluice::kernels::cuda
