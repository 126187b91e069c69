// libFuzzer harness: GgufFile::parse over arbitrary bytes, then every typed getter on every
// key and a conversion of every small tensor through WeightSource.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/weights/dequant.h"
#include "engine/weights/gguf.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sluice::weights;
  auto file = GgufFile::parse("fuzz.gguf", data, size, nullptr);
  if (!file.is_ok()) {
    sluice::fuzz::check_rejection(file.status(), "fuzz.gguf");
    return 0;
  }
  const GgufFile& g = **file;
  for (const auto& [key, value] : g.metadata()) {
    (void)g.get_u64(key);
    (void)g.get_i64(key);
    (void)g.get_f64(key);
    (void)g.get_bool(key);
    (void)g.get_string(key);
    auto arr = g.get_array(key);
    if (arr.is_ok() && (*arr)->size() != (*arr)->ints.size() + (*arr)->floats.size() +
                                             (*arr)->bools.size() + (*arr)->strings.size() +
                                             (*arr)->arrays.size()) {
      __builtin_trap();
    }
  }
  std::vector<float> row;
  for (const auto& t : g.tensors()) {
    if (g.find_tensor(t.name) != &t) __builtin_trap();
    if (t.ne[0] > (1u << 16)) continue;
    row.resize(t.ne[0]);
    const uint64_t num_rows = t.num_elements / t.ne[0];
    if (!dequantize_rows(t, num_rows - 1, num_rows, row.data()).is_ok()) __builtin_trap();
    if (dequantize_rows(t, 0, num_rows + 1, row.data()).is_ok()) __builtin_trap();
  }
  auto src = WeightSource::from_gguf(std::move(file).value());
  sluice::fuzz::walk(*src);
  return 0;
}
