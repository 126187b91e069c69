#include "engine/models_cuda/device_memory.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <string>
#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace sluice::models::cuda {
namespace {

cudaError_t raw_allocate(MemoryKind kind, void** data, size_t bytes) {
  return kind == MemoryKind::kDevice ? cudaMalloc(data, bytes) : cudaMallocHost(data, bytes);
}

void raw_free(MemoryKind kind, void* data) {
  if (kind == MemoryKind::kDevice) {
    SLUICE_CUDA_CHECK(cudaFree(data));
  } else {
    SLUICE_CUDA_CHECK(cudaFreeHost(data));
  }
}

}  // namespace

std::string memory_size(double bytes) {
  constexpr double kKiB = 1024.0, kMiB = kKiB * 1024, kGiB = kMiB * 1024;
  if (bytes >= kGiB) return fmt::format("{:.2f} GiB", bytes / kGiB);
  if (bytes >= kMiB) return fmt::format("{:.1f} MiB", bytes / kMiB);
  if (bytes >= kKiB) return fmt::format("{:.1f} KiB", bytes / kKiB);
  return fmt::format("{} bytes", static_cast<long long>(bytes));
}

namespace {

// The operator's message for a failed allocation of `bytes` for `what`.
std::string allocation_error(MemoryKind kind, size_t bytes, std::string_view what,
                             cudaError_t err) {
  if (kind == MemoryKind::kPinnedHost) {
    return fmt::format("pinned host memory: cannot allocate {} bytes for {} ({})", bytes, what,
                       cudaGetErrorString(err));
  }
  const DeviceMemoryInfo info = device_memory_info();
  return fmt::format("GPU memory: cannot allocate {} for {} ({}); {} of {} free",
                     memory_size(static_cast<double>(bytes)), what, cudaGetErrorString(err),
                     memory_size(static_cast<double>(info.free_bytes)),
                     memory_size(static_cast<double>(info.total_bytes)));
}

}  // namespace

template <MemoryKind kKind>
GpuMemory<kKind>& GpuMemory<kKind>::operator=(GpuMemory&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

template <MemoryKind kKind>
StatusOr<GpuMemory<kKind>> GpuMemory<kKind>::allocate(size_t bytes, std::string_view what) {
  GpuMemory m;
  if (bytes == 0) return m;
  const cudaError_t err = raw_allocate(kKind, &m.data_, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state of a failed allocation
    return Status::resource_exhausted(allocation_error(kKind, bytes, what, err));
  }
  m.bytes_ = bytes;
  return m;
}

template <MemoryKind kKind>
void GpuMemory<kKind>::reset() {
  if (data_ != nullptr) raw_free(kKind, data_);
  data_ = nullptr;
  bytes_ = 0;
}

template class GpuMemory<MemoryKind::kDevice>;
template class GpuMemory<MemoryKind::kPinnedHost>;

DeviceMemoryInfo device_memory_info() {
  DeviceMemoryInfo info;
  SLUICE_CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
  return info;
}

}  // namespace sluice::models::cuda
