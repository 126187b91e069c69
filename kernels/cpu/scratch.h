#pragma once
// Per-thread scratch memory for the CPU ops (packed weight panels, attention scores, RoPE
// tables). Each thread has a few independent slots; a slot grows on demand, is 64-byte
// aligned, and lives as long as its thread (pool threads are persistent, so a steady-state
// forward pass allocates nothing). The contents are unspecified on return.

#include <cstddef>

namespace sluice::kernels::cpu {

inline constexpr int kNumScratchSlots = 4;

// At least n floats in `slot` (0 <= slot < kNumScratchSlots) of the calling thread. Valid
// until the same thread asks for the same slot again.
float* scratch_floats(int slot, size_t n);

}  // namespace sluice::kernels::cpu
