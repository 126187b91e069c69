#pragma once
// Shared checks of the fuzz harnesses: what a rejection must look like, and a walk over
// every tensor of a WeightSource that converts the small ones (so the dequantizers and the
// converters see arbitrary bytes too).

#include <cstdlib>
#include <string>

#include "engine/weights/weight_source.h"

namespace sluice::fuzz {

// An error message is one line that starts with the name given to the parser.
inline void check_rejection(const sluice::Status& st, const std::string& name) {
  const std::string& m = st.message();
  if (m.find('\n') != std::string::npos || m.rfind(name + ": ", 0) != 0) std::abort();
}

inline void walk(const sluice::weights::WeightSource& src) {
  using namespace sluice::weights;
  for (const auto& name : src.names()) {
    const WeightInfo* w = src.find(name);
    if (w == nullptr) std::abort();
    if (w->num_elements > (1u << 16)) continue;  // keep each input fast
    auto f32 = load_as_f32(*w);
    if (!f32.is_ok()) std::abort();  // a parsed tensor always converts
    auto bf16 = load_as(*w, sluice::kernels::DType::kBF16);
    if (!bf16.is_ok()) std::abort();
    if (w->num_elements != 0 && f32->tensor.numel() != static_cast<int64_t>(w->num_elements)) {
      std::abort();
    }
  }
}

}  // namespace sluice::fuzz
