// pdl_enabled() of kernels/cuda/pdl.cuh: programmatic dependent launch on devices of
// compute capability 9.0 and later, unless SLUICE_PDL=0. Read once per device.

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <mutex>

#include "kernels/cuda/cuda_check.h"

namespace sluice::kernels::cuda {

bool pdl_enabled() {
  constexpr int kMaxDevices = 64;
  static const bool disabled = [] {
    const char* v = std::getenv("SLUICE_PDL");
    return v != nullptr && v[0] == '0';
  }();
  static bool pdl[kMaxDevices];
  static std::once_flag once[kMaxDevices];
  if (disabled) return false;
  int dev = 0;
  SLUICE_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= kMaxDevices) return false;
  std::call_once(once[dev], [dev] {
    int major = 0;
    SLUICE_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    pdl[dev] = major >= 9;
  });
  return pdl[dev];
}

}  // namespace sluice::kernels::cuda
