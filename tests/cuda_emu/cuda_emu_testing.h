#pragma once
// Test support of the CUDA emulator, for tests that include it under SLUICE_CUDA_EMU only.

#include <cstdint>

namespace sluice_emu {

// Counts `bytes` more (negative: fewer) of the emulated device's memory as in use without
// allocating any host memory, so a test can leave a device nearly full cheaply (on a GPU
// the same test holds a real allocation).
void hold_device_memory(int64_t bytes);

}  // namespace sluice_emu
