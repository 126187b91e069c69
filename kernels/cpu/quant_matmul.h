#pragma once
// Matmul on ggml-quantized weights as they sit in a GGUF file (no f32 copy): the decode path
// of the CPU backend. Activations are quantized on the fly to 8-bit blocks of 32 (one f32
// scale each), and each block product is an exact integer dot product; see quant_kernels.h
// for the formulation. Per ISA: plain C++, AVX2, AVX-512 and AVX-512 VNNI, chosen with
// the rest of the backend (isa.h, SLUICE_CPU_ISA).
//
// Accuracy against dequantize-then-f32: the weights are used exactly; the only extra error
// is the activation rounding, at most half a step (max|x in block| / 254) per element, so
//   |out - ref| <= sum_b (ad[b] / 2) * sum_{k in b} |w[k]|   (+ f32 rounding),
// which quant_error_bound() computes for tests.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/quant_kernels.h"
#include "kernels/tensor.h"

namespace sluice::kernels::cpu {

// Elements and bytes per block of `t`, and its GGUF name ("Q4_K").
int64_t quant_block_elems(QuantType t);
int64_t quant_block_bytes(QuantType t);
const char* quant_type_name(QuantType t);
// Bytes of one row of `cols` elements, or -1 when cols is not a positive multiple of the block.
int64_t quant_row_bytes(QuantType t, int64_t cols);

// A [rows, cols] matrix of `type` blocks, row-major: row n is row_bytes bytes at
// data + n * row_bytes (any alignment). A view: the owner (a mapped file, a buffer) keeps
// the bytes alive.
struct QuantMatrix {
  const uint8_t* data = nullptr;
  QuantType type = QuantType::kQ8_0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_bytes = 0;

  bool defined() const { return data != nullptr; }
};

// The kernels of the active ISA (isa.h active_isa(); AVX-512 uses VNNI when the CPU has it).
const QuantKernels& quant_kernels();
// Every kernel table this CPU can run (scalar first), for tests and benchmarks.
std::vector<const QuantKernels*> supported_quant_kernels();

// Quantizes M rows of K floats (row m at x + m*ldx; K a multiple of 32) to the 8-bit
// activation blocks of quant_kernels.h: aq [M*K], ad [M*K/32], as16 [M*K/16].
void quantize_q8_rows(const float* x, int64_t ldx, int64_t M, int64_t K, int8_t* aq, float* ad,
                      float* as16);

// Bytes of the `work` buffer a QuantKernels::gemm call needs for rows of K elements.
size_t quant_work_bytes(int64_t K);

// out[m*ldo + n] = sum_k a[m*lda + k] * w[n, k] for m < M, n < w.rows, with `kern`, on the
// process-wide thread pool (threads split the weight rows: the matrix is read once per
// call, whatever M is). K = w.cols. Aborts (SLUICE_CHECK) on inconsistent arguments.
// From 32 rows of `a` on (prefill) the weights are instead dequantized to f32 panel by panel
// and run through the dense GEMM: exact weights, f32 activations, no 8-bit rounding.
void quant_matmul(const QuantKernels& kern, const float* a, int64_t lda, int64_t M,
                  const QuantMatrix& w, float* out, int64_t ldo);

// The op form: out [M, N] f32 = a [M, K] f32 * w^T with the active kernels; a and out may
// have row strides larger than K and N.
void quant_matmul(const Tensor& out, const Tensor& a, const QuantMatrix& w);

// Several matrices over the same input (a layer's q, k and v; gate and up), each into its own
// output: the activations are quantized once and one parallel_for covers every matrix's
// rows. Each output equals quant_matmul's for its matrix, bit for bit. At most
// kMaxQuantOutputs matrices, all with K columns; types may differ.
inline constexpr size_t kMaxQuantOutputs = 8;
struct QuantOutput {
  const QuantMatrix* w;
  float* out;
  int64_t ldo;
};
void quant_matmul_multi(const QuantKernels& kern, const float* a, int64_t lda, int64_t M,
                        std::span<const QuantOutput> outs);
struct QuantMatmulOut {
  Tensor out;
  const QuantMatrix* w;
};
void quant_matmul_multi(const Tensor& a, std::span<const QuantMatmulOut> outs);

// The worst-case |quant_matmul - exact| of one output (see the header comment), for row
// `w_row` (K dequantized weights) against activation row `x` (K floats).
double quant_error_bound(const float* w_row, const float* x, int64_t K);

}  // namespace sluice::kernels::cpu
