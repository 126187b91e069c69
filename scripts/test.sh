#!/usr/bin/env bash
# The README's "test" command (and CI's): installs what is missing, builds everything, then
# runs every test: the unit and integration tests (ctest) and the fuzz harnesses for a
# bounded time (a clang build in build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd .. && pwd)}"
export CCACHE_NOHASHDIR=1
jobs=$(nproc)
(cd build && ctest --output-on-failure -j"$jobs" -LE fuzz)
# Fuzzers: libFuzzer needs clang; the harnesses run over the committed seed corpus.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLUICE_BUILD_FUZZERS=ON -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_SERVER=OFF \
  -DSLUICE_BUILD_BENCHMARKS=OFF -DSLUICE_ENABLE_CUDA=OFF >/dev/null
ninja -C build-fuzz
(cd build-fuzz && ctest --output-on-failure -j"$jobs" -L fuzz)
