#pragma once
// Tensor-core and asynchronous-copy primitives of sm_80 and later, shared by the kernels that
// stage tiles in shared memory (moe.cu, paged_attention.cu, paged_attention_mma.cu). Include
// from .cu files only.
//
// Fragment layouts of mma.m16n8k16 with .bf16 inputs (PTX ISA), for lane = 4 g + q:
//   A (16 x 16, row-major), 4 registers: rows g, g + 8, g, g + 8 at columns 2q (+1), 2q (+1),
//     2q + 8 (+1), 2q + 8 (+1);
//   B (16 x 8, column-major), 2 registers: column g at rows 2q (+1) and 2q + 8 (+1);
//   C/D (16 x 8, f32), 4 registers: rows g, g, g + 8, g + 8 at columns 2q, 2q + 1.
// The lower-numbered element of a pair sits in the low 16 bits.

#include <cuda_runtime.h>

#include <cstdint>

namespace sluice::kernels::cuda {

#if defined(SLUICE_CUDA_EMU)
// The CPU emulator's forms (tests/cuda_emu): the same contracts, as warp rendezvous.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  ::sluice_emu::cp_async16(dst, src, valid);
}
__device__ __forceinline__ void cp_async_commit() { ::sluice_emu::cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  ::sluice_emu::cp_async_wait(N);
}
__device__ __forceinline__ void ldmatrix_collective(::sluice_emu::WarpOp op, uint32_t (&r)[4],
                                                    const void* row) {
  ::sluice_emu::Collective c{};
  c.op = op;
  c.mask = 0xffffffffu;
  c.in[0] = reinterpret_cast<uintptr_t>(row);
  ::sluice_emu::warp_collective(c);
  for (int i = 0; i < 4; ++i) r[i] = static_cast<uint32_t>(c.out[i]);
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  ldmatrix_collective(::sluice_emu::WarpOp::kLdMatrix, r, row);
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  ldmatrix_collective(::sluice_emu::WarpOp::kLdMatrixTrans, r, row);
}
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  ::sluice_emu::Collective col{};
  col.op = ::sluice_emu::WarpOp::kMmaBf16;
  col.mask = 0xffffffffu;
  for (int i = 0; i < 4; ++i) col.in[i] = a[i];
  col.in[4] = b0;
  col.in[5] = b1;
  for (int i = 0; i < 4; ++i) col.in[6 + i] = __float_as_uint(c[i]);
  ::sluice_emu::warp_collective(col);
  for (int i = 0; i < 4; ++i) c[i] = __uint_as_float(static_cast<uint32_t>(col.out[i]));
}
#else
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; with valid false it writes zeros and reads nothing.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices from shared memory: lane l names row l % 8 of matrix l / 8 (16
// contiguous bytes, 16-byte aligned); register i of lane 4 g + q holds row g, columns 2q and
// 2q + 1 of matrix i (an A or B fragment when the rows are the fragment's rows).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row)));
}

// The same, transposed: register i of lane 4 g + q holds rows 2q and 2q + 1 of column g of
// matrix i (a B fragment from a row-major k x n tile).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row)));
}

// c += a b over one m16n8k16 tile: bf16 inputs, f32 accumulators.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif  // SLUICE_CUDA_EMU

}  // namespace sluice::kernels::cuda
