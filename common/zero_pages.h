#pragma once
// ZeroPages: a resizable block of anonymous memory that reads as zeros and is committed by
// the OS page by page as it is first written, so a large reservation that is used in part
// (a KV cache sized for the worst case) costs resident memory only for what was touched.
// Growing keeps the contents (mremap, no copy through user space). Not copyable.

#include <cstddef>

namespace sluice {

class ZeroPages {
 public:
  ZeroPages() = default;
  explicit ZeroPages(size_t bytes) { resize(bytes); }
  ~ZeroPages();
  ZeroPages(ZeroPages&& other) noexcept;
  ZeroPages& operator=(ZeroPages&& other) noexcept;
  ZeroPages(const ZeroPages&) = delete;
  ZeroPages& operator=(const ZeroPages&) = delete;

  // Grows (or shrinks) to `bytes`, keeping the first min(old, new) bytes; new bytes read as
  // zero. Throws std::bad_alloc when the address space cannot be had.
  void resize(size_t bytes);

  void* data() { return data_; }
  const void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sluice
