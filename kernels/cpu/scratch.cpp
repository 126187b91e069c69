#include "kernels/cpu/scratch.h"

#include <new>

#include "common/check.h"

namespace sluice::kernels::cpu {
namespace {

constexpr std::align_val_t kAlign{64};

struct ScratchSlots {
  float* data[kNumScratchSlots] = {};
  size_t capacity[kNumScratchSlots] = {};
  ~ScratchSlots() {
    for (float* p : data) ::operator delete[](p, kAlign);
  }
};

thread_local ScratchSlots tls_slots;

}  // namespace

float* scratch_floats(int slot, size_t n) {
  SLUICE_CHECK(slot >= 0 && slot < kNumScratchSlots, "scratch slot {} out of range", slot);
  if (tls_slots.capacity[slot] < n) {
    ::operator delete[](tls_slots.data[slot], kAlign);
    tls_slots.data[slot] = nullptr;
    tls_slots.capacity[slot] = 0;
    const size_t grown = n + n / 4 + 64;  // some headroom: shapes vary a little between calls
    tls_slots.data[slot] = static_cast<float*>(::operator new[](grown * sizeof(float), kAlign));
    tls_slots.capacity[slot] = grown;
  }
  return tls_slots.data[slot];
}

}  // namespace sluice::kernels::cpu
