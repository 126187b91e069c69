#include "common/zero_pages.h"

#include <sys/mman.h>

#include <new>
#include <utility>

namespace sluice {

ZeroPages::~ZeroPages() {
  if (data_ != nullptr) munmap(data_, size_);
}

ZeroPages::ZeroPages(ZeroPages&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

ZeroPages& ZeroPages::operator=(ZeroPages&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void ZeroPages::resize(size_t bytes) {
  if (bytes == size_) return;
  if (bytes == 0) {
    munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
    return;
  }
  void* p = data_ == nullptr
                ? mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                : mremap(data_, size_, bytes, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) throw std::bad_alloc();  // as std::vector would: callers report it
  data_ = p;
  size_ = bytes;
}

}  // namespace sluice
