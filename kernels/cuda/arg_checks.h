#pragma once
// Argument checks shared by the host side of the CUDA ops (kernels/cuda/*.cpp), and the view
// arithmetic behind them. Each check returns a Status whose message reads
//   "<op>: <tensor> <what is wrong>; expected <what is allowed>"
// which is what the public check_*() functions promise; launchers turn a failed check into
// an abort with check_or_die(). Also the translations from Tensor views into the parameter
// blocks of kernel_params.h that several launchers share.
//
// Internal to kernels/cuda. Plain C++ with no CUDA or fmt header, so any host .cpp here can
// include it; the .cu files never do.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

#include "common/status.h"
#include "kernels/cuda/kernel_params.h"  // ElemType, RowView
#include "kernels/ops.h"  // RopeArgs
#include "kernels/tensor.h"

namespace sluice::kernels::cuda::detail {

// Launch limits: blocks along grid x, and along grid y or z.
inline constexpr int64_t kMaxGridX = std::numeric_limits<int32_t>::max();
inline constexpr int64_t kMaxGridYZ = 65535;

// Status::invalid_argument("<op>: <message>").
Status fail(std::string_view op, std::string_view message);

// Aborts (SLUICE_CHECK) with the message of a failed check. A launcher's arguments that
// fail its check are a bug in the caller, not bad input.
void check_or_die(const Status& status);

// ---- One tensor. `name` is how the message calls it ("out", "k_cache", ...).

// Defined and in device memory. With allow_empty, an undefined view without elements
// passes too (a zero-token batch may carry null pointers).
Status check_on_device(std::string_view op, std::string_view name, const Tensor& t,
                       bool allow_empty = false);

// Exactly `want`.
Status check_dtype(std::string_view op, std::string_view name, const Tensor& t, DType want);

// f32 or bf16.
Status check_float_dtype(std::string_view op, std::string_view name, const Tensor& t);

// The last dimension is contiguous (stride 1) where it has more than one element.
Status check_last_dim_contiguous(std::string_view op, std::string_view name, const Tensor& t);

// Rank in [min_rank, max_rank] (`expected` describes the shape, e.g. "[T, num_heads,
// head_dim]"), non-negative extents and strides, and a contiguous last dimension. With
// max_extent >= 0, every extent must also be at most max_extent.
Status check_layout(std::string_view op, std::string_view name, const Tensor& t, int min_rank,
                    int max_rank, std::string_view expected, int64_t max_extent = -1);

// An activation: check_on_device, check_float_dtype and check_layout in that order.
Status check_rows(std::string_view op, std::string_view name, const Tensor& t, int min_rank,
                  int max_rank, std::string_view expected);

// A device i32 vector [length], contiguous. `what` says what it holds ("one per token of
// q"); empty leaves it out of the message.
Status check_i32_vector(std::string_view op, std::string_view name, const Tensor& t, int64_t length,
                        std::string_view what);

// A scratch buffer of at least `need` bytes: in device memory, contiguous and 16-byte
// aligned (anything passes when need is 0). `sizing` names the call that gives `need`
// ("paged_attention_workspace_bytes"), for the message.
Status check_workspace(std::string_view op, const Tensor& workspace, size_t need,
                       std::string_view sizing);

// A finite scalar argument.
Status check_finite(std::string_view op, std::string_view name, float value);

// ---- Shapes.

bool same_shape(const Tensor& a, const Tensor& b);

// `t` has the shape of `ref` (rank included).
Status check_same_shape(std::string_view op, std::string_view name, const Tensor& t,
                        std::string_view ref_name, const Tensor& ref);

// ---- Memory.

// Bytes [begin, end) that a view can touch; empty (begin == end) for an undefined view or
// one without elements.
struct ByteSpan {
  uintptr_t begin = 0, end = 0;
};
ByteSpan byte_span(const Tensor& t);
// `bytes` bytes from `data`; empty for null data or zero bytes.
ByteSpan byte_span(const void* data, size_t bytes);

// Whether two views can share a byte. Exact for two sets of rows with one common stride
// (e.g. gate and up as the two halves of one fused projection, whose byte spans interleave
// but whose elements do not); otherwise conservative (their whole byte spans). Undefined
// and empty views overlap nothing.
bool views_overlap(const Tensor& x, const Tensor& y);

// The same elements with the same layout: a permitted in-place alias.
bool same_view(const Tensor& a, const Tensor& b);

// `written` shares no byte with `other`; with allow_same_view, the two may also be the
// same view (an in-place op).
Status check_disjoint(std::string_view op, std::string_view written_name, const Tensor& written,
                      std::string_view other_name, const Tensor& other,
                      bool allow_same_view = false);

// Two byte ranges do not intersect (for memory that is not a tensor view, such as the used
// part of a workspace).
Status check_disjoint(std::string_view op, std::string_view a_name, ByteSpan a,
                      std::string_view b_name, ByteSpan b);

// ---- Translation into kernel_params.h.

// The kernels' element type of an f32 or bf16 tensor (call after check_float_dtype).
ElemType elem_type(DType t);

bool aligned16(const void* p);

// Every row start of a [D], [R, D] or [A, B, D] view is 16-byte aligned: the pointer, and
// the byte stride of every leading dimension with more than one element.
bool rows_aligned16(const Tensor& t);

// A [D], [R, D] or [A, B, D] view as a RowView. A leading dimension of extent 1 gets
// stride 0: no row offset uses it, so it cannot spoil an alignment test.
RowView row_view(const Tensor& t);

// The RoPE parameter block of checked RopeArgs (check_rope): x [T, H, D], its positions
// and angles; heads_per_block is the launcher's to choose.
RopeParams rope_params(const RopeArgs& a);

}  // namespace sluice::kernels::cuda::detail
