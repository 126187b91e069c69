#pragma once
// SLUICE_CUDA_CHECK: wraps a CUDA runtime call whose failure means a bug or a dead device
// (an invariant, not bad input). On failure it prints the expression, cudaGetErrorString
// and file:line, then aborts. Use it around every runtime call and after every launch:
//   SLUICE_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream));
//   my_kernel<<<grid, block, 0, stream>>>(params);
//   SLUICE_CUDA_CHECK(cudaGetLastError());
//
// cuda_device_count() is the one CUDA query that must not abort: it answers 0 when there
// is no driver, a driver too old for this runtime, or no device, so that a CPU machine
// (CI, this project's build hosts) can ask "is there a GPU?" and skip cleanly.
//
// This header pulls in only <cuda_runtime_api.h> (a C header), so host .cpp files and .cu
// files can both include it cheaply.

#include <cuda_runtime_api.h>

namespace sluice::kernels::cuda {

// Prints "sluice: CUDA call failed: <expr>: <error name>: <error string> at file:line"
// to stderr and aborts.
[[noreturn]] void cuda_check_failed(cudaError_t err, const char* expr, const char* file, int line);

// Number of usable CUDA devices; 0 (never an abort) when no driver or device exists. Clears
// the runtime's last-error state it may have set. Thread-safe; cheap after the first call.
int cuda_device_count();

}  // namespace sluice::kernels::cuda

#define SLUICE_CUDA_CHECK(expr)                                                                \
  do {                                                                                         \
    const cudaError_t sluice_cuda_err_ = (expr);                                               \
    if (sluice_cuda_err_ != cudaSuccess) [[unlikely]] {                                        \
      ::sluice::kernels::cuda::cuda_check_failed(sluice_cuda_err_, #expr, __FILE__, __LINE__); \
    }                                                                                          \
  } while (0)
