#pragma once
// Owners of GPU-side memory for the CUDA model: device allocations (cudaMalloc, never managed
// memory) and page-locked host staging buffers. Move-only; freed on destruction. Allocation
// failures come back as a Status (RESOURCE_EXHAUSTED naming what did not fit), because a
// model that does not fit is a start-up error the operator must read, not a crash.

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::models::cuda {

// Where a GpuMemory lives: device memory (cudaMalloc / cudaFree) or page-locked host memory
// (cudaMallocHost / cudaFreeHost).
enum class MemoryKind { kDevice, kPinnedHost };

template <MemoryKind kKind>
class GpuMemory {
 public:
  GpuMemory() = default;
  ~GpuMemory() { reset(); }
  GpuMemory(GpuMemory&& o) noexcept : data_(o.data_), bytes_(o.bytes_) {
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  GpuMemory& operator=(GpuMemory&& o) noexcept;
  GpuMemory(const GpuMemory&) = delete;
  GpuMemory& operator=(const GpuMemory&) = delete;

  // `what` names the buffer in the error ("weights", "KV cache of layer 3", ...). Zero bytes
  // gives an empty owner (null data) without allocating.
  static StatusOr<GpuMemory> allocate(size_t bytes, std::string_view what);

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // Frees the memory (if any); the owner is then empty.
  void reset();

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Both kinds are instantiated in device_memory.cpp, next to the CUDA calls they make.
extern template class GpuMemory<MemoryKind::kDevice>;
extern template class GpuMemory<MemoryKind::kPinnedHost>;

using DeviceMemory = GpuMemory<MemoryKind::kDevice>;
using PinnedMemory = GpuMemory<MemoryKind::kPinnedHost>;

// `bytes` for an operator's message: "1.25 GiB", "34.0 MiB", "12.5 KiB", "300 bytes".
std::string memory_size(double bytes);

// Free and total bytes of the current device.
struct DeviceMemoryInfo {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};
DeviceMemoryInfo device_memory_info();

}  // namespace sluice::models::cuda
