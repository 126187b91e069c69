# Third-party libraries, all from Debian 12 packages (scripts/install-deps.sh installs them).
# The lower layers (common, kernels, models) need only fmt and nlohmann-json, both usable
# header-only, so the GPU-only build can carry them (INTERFACES.md, "The GPU build").

find_package(fmt CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
if(SLUICE_BUILD_SERVER)
  find_package(CLI11 CONFIG REQUIRED)
  find_package(spdlog CONFIG REQUIRED)
endif()
if(SLUICE_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
  include(GoogleTest)
endif()
if(SLUICE_BUILD_BENCHMARKS)
  find_package(benchmark CONFIG REQUIRED)
endif()
