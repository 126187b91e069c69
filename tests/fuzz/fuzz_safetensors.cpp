// libFuzzer harness: SafetensorsFile::parse over one in-memory file, then a conversion of
// every small tensor through WeightSource.

#include <cstddef>
#include <cstdint>

#include "engine/weights/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sluice::weights;
  auto file = SafetensorsFile::parse("fuzz.safetensors", data, size, nullptr);
  if (!file.is_ok()) {
    sluice::fuzz::check_rejection(file.status(), "fuzz.safetensors");
    return 0;
  }
  for (const auto& t : (*file)->tensors()) {
    if ((*file)->find(t.name) != &t) __builtin_trap();
    if (t.data + t.nbytes() > data + size) __builtin_trap();
  }
  auto src = WeightSource::from_safetensors(SafetensorsSet::from_file(std::move(file).value()),
                                            "fuzz.safetensors");
  sluice::fuzz::walk(*src);
  return 0;
}
