#pragma once
// The CUDA matmul: out = a · w^T (kernels/ops.h MatmulArgs, Hugging Face Linear layout)
// through cuBLASLt, bf16 operands (or f32 ones), f32 accumulation, f32 or bf16 output
// rounded once; decode shapes (a few rows, a weight that cuBLASLt streams slowly) through
// our own kernel (matmul_uses_gemv).
//
// Each device gets one process-wide cuBLASLt context: a handle and a 32 MiB workspace,
// created by init_blas() or lazily by the first matmul on that device, plus a cache that
// maps a problem (M, N, K, dtypes, row strides, alignments) to the algorithm the cuBLASLt
// heuristic chose for it, so a repeated shape skips the query. Includers need no CUDA header:
// tensors are kernels::Tensor views of device memory and `stream` is a cudaStream_t passed as
// void* (nullptr: the legacy default stream).
//
// NOTE: the workspace is shared by every matmul of a device. Two matmuls of one device that
// run concurrently on different streams would race on it, so a device's matmuls must be
// ordered (one stream per device, as the executor's workers run, or events between streams).
//
// Stream capture (CUDA graphs): after init_blas() on the device, matmul() and matmul_acc()
// neither allocate device memory nor synchronise, for any shape; a shape's first call runs
// the heuristic query on the host (no device work), later calls only a cache lookup. The
// launchers abort with a message naming init_blas() if the workspace would have to be
// allocated while `stream` is capturing.

#include "common/status.h"
#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace sluice::kernels::cuda {

// Creates the calling thread's current device's cuBLASLt handle and workspace if they do
// not exist yet (a no-op afterwards). Call it on each device at start-up, before any stream
// capture, so that no matmul allocates later. Thread-safe. RESOURCE_EXHAUSTED when the
// device has no room for the workspace (nothing stays allocated then), INTERNAL when
// cuBLASLt cannot start.
[[nodiscard]] Status init_blas();

// out = a · w^T, MatmulArgs as in kernels/ops.h, with these CUDA dtypes and layouts:
//   a   [M, K] bf16, row stride >= K (free when M == 1), last dimension contiguous;
//   w   [N, K] bf16, contiguous;
//   out [M, N] f32|bf16, row stride >= N (free when M == 1), last dimension contiguous;
//       out overlaps neither a nor w;
// or a, w and out all f32 (full f32 arithmetic, no TF32: for small layers whose inputs must
// not be rounded, such as Gemma 4's MoE router).
// All on the device; each extent at most 2^31 - 1. Products accumulate in f32; each output
// element is rounded once.
// M == 0 or N == 0 launches nothing (and touches no CUDA state); K == 0 writes zeros.
// Row strides and pointers need no particular alignment (algorithms are chosen for the
// alignment the views have; 16-byte-aligned rows get the fastest ones).
// check_matmul() returns the launcher's verdict as a Status naming the op and tensor;
// matmul() aborts (SLUICE_CHECK) on a violation, and on any CUDA or cuBLAS failure.
// Asynchronous on `stream`; the calling thread's current device must own the tensors.
Status check_matmul(const MatmulArgs& args);
void matmul(const MatmulArgs& args, void* stream);

// out = beta * out + a · w^T with beta 0 or 1 (beta 1 folds a residual add into the
// projection; beta 0 is matmul(), and then out is never read). Same dtypes and layouts as
// matmul(); with beta 1, out is read and written in place, each element rounded once from
// the f32 sum.
struct MatmulAccArgs {
  Tensor out, a, w;
  float beta = 0.f;
};
Status check_matmul_acc(const MatmulAccArgs& args);
void matmul_acc(const MatmulAccArgs& args, void* stream);

// Whether matmul() / matmul_acc() with these (valid) arguments runs the decode-shaped kernel
// (kernels/cuda/gemv.cu) instead of cuBLASLt: 1 to 8 rows of bf16 a, a bf16 weight of at
// most 2^26 elements with K a multiple of 8 and at least 256, 16-byte aligned rows of a and
// w. Same contract and rounding (f32 sums in another order). For tests and benchmarks.
bool matmul_uses_gemv(const MatmulArgs& args);

// act = gelu_tanh(a . w_gate^T) * (a . w_up^T) in one pass over a fused gate/up weight, for
// decode shapes only (those of matmul_uses_gemv; check_matmul_geglu says why not, and then
// matmul followed by geglu does the same in two launches):
//   a [M, K] bf16; w [2 I, K] bf16 contiguous, the I gate rows then the I up rows;
//   out [M, I] f32|bf16 (row stride free), overlapping neither.
// Both projections stay in f32 (the two-launch path rounds them to its buffer's dtype);
// each output is rounded once. GeGLU as kernels/ops.h defines it.
struct MatmulGegluArgs {
  Tensor out, a, w;
};
Status check_matmul_geglu(const MatmulGegluArgs& args);
bool matmul_geglu_applies(const MatmulGegluArgs& args);  // check_matmul_geglu passes (cheaply)
void matmul_geglu(const MatmulGegluArgs& args, void* stream);

// Entries in the calling thread's current device's algorithm cache (0 before its first
// matmul). For tests and diagnostics.
size_t blas_cached_algo_count();

}  // namespace sluice::kernels::cuda
