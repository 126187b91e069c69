#pragma once
// Helpers shared by the unit tests: where the source tree and fixtures are.

#include <string>

namespace sluice::testing {

// The repository root (from SLUICE_SOURCE_DIR, which ctest sets), or "." when unset.
std::string source_dir();
// tests/fixtures/<rel> under the repository root.
std::string fixture_path(const std::string& rel);
// ../shared/data/<rel> beside the repository (read-only reference data).
std::string shared_data_path(const std::string& rel);
// The default model's GGUF if the set-up placed it in models/ (or $SLUICE_DEFAULT_MODEL);
// empty when absent.
std::string default_model_path();
// Reads a whole file; empty string when missing.
std::string read_file(const std::string& path);
// <temp dir>/<name>.<pid>: a scratch path no other test process shares (ctest runs test
// binaries side by side, and one test may run in two of them).
std::string scratch_path(const std::string& name);

}  // namespace sluice::testing
