#pragma once

namespace sluice::server {
// "0.1.0": the project version (CMake's project()).
const char* version();
}  // namespace sluice::server
