#pragma once
// Owners of GPU-side memory for the CUDA model: device allocations (cudaMalloc, never managed
// memory) and page-locked host staging buffers. Move-only; freed on destruction. Allocation
// failures come back as a Status (RESOURCE_EXHAUSTED naming what did not fit), because a
// model that does not fit is a start-up error the operator must read, not a crash.

#include <cstddef>
#include <string_view>

#include "common/status.h"

namespace sluice::models::cuda {

class DeviceMemory {
 public:
  DeviceMemory() = default;
  ~DeviceMemory() { reset(); }
  DeviceMemory(DeviceMemory&& o) noexcept : data_(o.data_), bytes_(o.bytes_) { o.data_ = nullptr; o.bytes_ = 0; }
  DeviceMemory& operator=(DeviceMemory&& o) noexcept;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  // `what` names the buffer in the error ("weights", "KV cache of layer 3", ...).
  static StatusOr<DeviceMemory> allocate(size_t bytes, std::string_view what);

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  void reset();

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class PinnedMemory {
 public:
  PinnedMemory() = default;
  ~PinnedMemory() { reset(); }
  PinnedMemory(PinnedMemory&& o) noexcept : data_(o.data_), bytes_(o.bytes_) { o.data_ = nullptr; o.bytes_ = 0; }
  PinnedMemory& operator=(PinnedMemory&& o) noexcept;
  PinnedMemory(const PinnedMemory&) = delete;
  PinnedMemory& operator=(const PinnedMemory&) = delete;

  static StatusOr<PinnedMemory> allocate(size_t bytes, std::string_view what);

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  void reset();

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Free and total bytes of the current device.
struct DeviceMemoryInfo {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};
DeviceMemoryInfo device_memory_info();

}  // namespace sluice::models::cuda
