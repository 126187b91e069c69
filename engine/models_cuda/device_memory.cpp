#include "engine/models_cuda/device_memory.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace sluice::models::cuda {

DeviceMemory& DeviceMemory::operator=(DeviceMemory&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

StatusOr<DeviceMemory> DeviceMemory::allocate(size_t bytes, std::string_view what) {
  DeviceMemory m;
  if (bytes == 0) return m;
  const cudaError_t err = cudaMalloc(&m.data_, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state of a failed allocation
    const DeviceMemoryInfo info = device_memory_info();
    return Status::resource_exhausted(fmt::format(
        "GPU memory: cannot allocate {:.2f} GiB for {} ({}); {:.2f} GiB of {:.2f} GiB free",
        bytes / 1073741824.0, what, cudaGetErrorString(err), info.free_bytes / 1073741824.0,
        info.total_bytes / 1073741824.0));
  }
  m.bytes_ = bytes;
  return m;
}

void DeviceMemory::reset() {
  if (data_ != nullptr) SLUICE_CUDA_CHECK(cudaFree(data_));
  data_ = nullptr;
  bytes_ = 0;
}

PinnedMemory& PinnedMemory::operator=(PinnedMemory&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

StatusOr<PinnedMemory> PinnedMemory::allocate(size_t bytes, std::string_view what) {
  PinnedMemory m;
  if (bytes == 0) return m;
  const cudaError_t err = cudaMallocHost(&m.data_, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return Status::resource_exhausted(fmt::format("pinned host memory: cannot allocate {} bytes for {} ({})",
                                                  bytes, what, cudaGetErrorString(err)));
  }
  m.bytes_ = bytes;
  return m;
}

void PinnedMemory::reset() {
  if (data_ != nullptr) SLUICE_CUDA_CHECK(cudaFreeHost(data_));
  data_ = nullptr;
  bytes_ = 0;
}

DeviceMemoryInfo device_memory_info() {
  DeviceMemoryInfo info;
  SLUICE_CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
  return info;
}

}  // namespace sluice::models::cuda
