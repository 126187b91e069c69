# Third-party libraries, all from Debian 12 packages (scripts/install-deps.sh installs them).
# The lower layers (common, kernels, models) need only fmt and nlohmann-json, both usable
# header-only, so the GPU-only build can carry them (INTERFACES.md, "The GPU build").
#
# SLUICE_THIRD_PARTY_DIR (the GPU preset sets it): a folder made by scripts/gpu-deps.sh with
# fmt/ and nlohmann/ headers and the GoogleTest sources, used instead of installed packages
# on a machine that has none of them.

set(SLUICE_THIRD_PARTY_DIR "" CACHE PATH "Carried header-only dependencies (GPU build)")

if(SLUICE_THIRD_PARTY_DIR)
  if(NOT EXISTS ${SLUICE_THIRD_PARTY_DIR}/include/fmt/format.h)
    message(FATAL_ERROR "SLUICE_THIRD_PARTY_DIR=${SLUICE_THIRD_PARTY_DIR} has no include/fmt: "
                        "run scripts/gpu-deps.sh on a machine with the Debian packages first")
  endif()
  add_library(sluice_fmt_headers INTERFACE)
  target_include_directories(sluice_fmt_headers SYSTEM INTERFACE ${SLUICE_THIRD_PARTY_DIR}/include)
  target_compile_definitions(sluice_fmt_headers INTERFACE FMT_HEADER_ONLY=1)
  add_library(fmt::fmt ALIAS sluice_fmt_headers)
  add_library(sluice_json_headers INTERFACE)
  target_include_directories(sluice_json_headers SYSTEM INTERFACE ${SLUICE_THIRD_PARTY_DIR}/include)
  add_library(nlohmann_json::nlohmann_json ALIAS sluice_json_headers)
  if(SLUICE_BUILD_TESTS)
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    add_subdirectory(${SLUICE_THIRD_PARTY_DIR}/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL SYSTEM)
    include(GoogleTest)
  endif()
else()
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
  if(SLUICE_BUILD_BENCHMARKS AND NOT SLUICE_GPU_SUITE)
    find_package(benchmark CONFIG REQUIRED)
  endif()
endif()
