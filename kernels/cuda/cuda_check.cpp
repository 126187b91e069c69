#include "kernels/cuda/cuda_check.h"

#include <cstdio>
#include <cstdlib>

namespace sluice::kernels::cuda {

void cuda_check_failed(cudaError_t err, const char* expr, const char* file, int line) {
  std::fprintf(stderr, "sluice: CUDA call failed: %s: %s: %s at %s:%d\n", expr,
               cudaGetErrorName(err), cudaGetErrorString(err), file, line);
  std::fflush(stderr);
  std::abort();
}

int cuda_device_count() {
  // The answer cannot change while the process runs (CUDA_VISIBLE_DEVICES is read once at
  // runtime initialisation), so ask once. A static local is initialised thread-safely.
  static const int count = [] {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      // cudaErrorNoDevice, cudaErrorInsufficientDriver, ...: not a GPU machine. Reset the
      // last-error state so a later SLUICE_CUDA_CHECK(cudaGetLastError()) does not trip.
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

}  // namespace sluice::kernels::cuda
