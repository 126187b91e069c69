#include "server/version.h"

namespace sluice::server {
const char* version() { return SLUICE_VERSION; }
}  // namespace sluice::server
