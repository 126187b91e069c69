#!/usr/bin/env bash
# Copies the header-only dependencies of the GPU build (fmt, nlohmann-json) and the GoogleTest
# sources from this machine's Debian packages into .gpu-deps/ (git-ignored), which
# benchmarks/gpu/run.sh needs on the GPU machine (no apt, no -dev packages there): name it
# in the call's carry list. Run scripts/install-deps.sh first if the packages are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.gpu-deps
for p in /usr/include/fmt/format.h /usr/include/nlohmann/json.hpp /usr/src/googletest/CMakeLists.txt; do
  if [[ ! -e $p ]]; then
    echo "gpu-deps: $p is missing (run scripts/install-deps.sh)" >&2
    exit 2
  fi
done
rm -rf "$dest"
mkdir -p "$dest/include"
cp -r /usr/include/fmt /usr/include/nlohmann "$dest/include/"
cp -r /usr/src/googletest "$dest/googletest"
echo "gpu-deps: $(du -sh "$dest" | cut -f1) in $dest"
