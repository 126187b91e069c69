#pragma once
// Resolves `--model`: a path as given, or "default", which resolves in order to
// $SLUICE_DEFAULT_MODEL, the file the set-up placed in the repository's models/ folder, and
// ~/.cache/sluice/ (INTERFACES.md, "The default model").

#include <string>

#include "common/status.h"

namespace sluice::server {

inline constexpr const char* kDefaultModelFile = "gemma-3-270m-q4_k_m.gguf";

StatusOr<std::string> resolve_model_path(const std::string& spec);

}  // namespace sluice::server
