#pragma once
// Programmatic dependent launch (sm_90 and later) for the kernels of a decode step: a kernel
// launched with launch_pdl may become resident while its predecessor on the stream drains;
// it waits (griddepcontrol.wait, the first thing it does) until the predecessor has
// completed and its writes are visible, then lets its own successor launch. Every CTA
// executes that wait before it can exit, so completion stays transitive along the stream,
// and a kernel launched the ordinary way after it (cuBLASLt, a copy) sees everything done.
// Include from .cu files only.
//
// Triggering after the wait, not before: a kernel's CTAs then park behind at most one
// running kernel (measured on the MoE kernels, H200: triggering first cost ~4 us a layer).

#include <cuda_runtime.h>

#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace sluice::kernels::cuda {

// The first statement of every kernel launched with launch_pdl.
__device__ __forceinline__ void start_after_producers() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// A kernel's dynamic shared memory: `extern __shared__ __align__(align) type name[]`, which
// the CPU emulator spells as a pointer to its per-launch buffer.
#if defined(SLUICE_CUDA_EMU)
#define SLUICE_DYNAMIC_SHARED(type, name, align) \
  type* name = static_cast<type*>(::sluice_emu::dynamic_smem())
#else
#define SLUICE_DYNAMIC_SHARED(type, name, align) extern __shared__ __align__(align) type name[]
#endif

// Whether launches on the calling thread's current device use programmatic dependent
// launch: compute capability 9.0 or later, unless SLUICE_PDL=0 in the environment (for
// measurements). Read once per device (pdl.cpp).
bool pdl_enabled();

#if defined(SLUICE_CUDA_EMU)
// The CPU emulator (tests/cuda_emu) runs the kernel where a GPU would launch it.
template <typename... Params, typename... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes, void* stream,
                Args&&... args) {
  ::sluice_emu::launch_kernel(kernel, grid, block, smem_bytes, static_cast<cudaStream_t>(stream),
                              std::forward<Args>(args)...);
  SLUICE_CUDA_CHECK(cudaGetLastError());
}
template <typename... Params, typename... Args>
void launch_plain(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                  void* stream, Args&&... args) {
  launch_pdl(kernel, grid, block, smem_bytes, stream, std::forward<Args>(args)...);
}
#else
// kernel<<<grid, block, smem_bytes, stream>>>(args...), with programmatic stream
// serialization where pdl_enabled(). The kernel must begin with start_after_producers().
template <typename... Params, typename... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes, void* stream,
                Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem_bytes;
  cfg.stream = static_cast<cudaStream_t>(stream);
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  SLUICE_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
  SLUICE_CUDA_CHECK(cudaGetLastError());
}

// kernel<<<grid, block, smem_bytes, stream>>>(args...), an ordinary launch (for kernels that
// do not begin with start_after_producers).
template <typename... Params, typename... Args>
void launch_plain(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                  void* stream, Args&&... args) {
  kernel<<<grid, block, smem_bytes, static_cast<cudaStream_t>(stream)>>>(
      std::forward<Args>(args)...);
  SLUICE_CUDA_CHECK(cudaGetLastError());
}
#endif

}  // namespace sluice::kernels::cuda
