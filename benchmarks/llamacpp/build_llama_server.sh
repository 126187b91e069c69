#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (CPU, native ISA, Release) from the llama.cpp sources that
# the llama-cpp-python source distribution on PyPI vendors (vendor/llama.cpp), and prints the
# binary's path on stdout (progress goes to stderr).
#
# Everything lives in a cache outside the project's tree, keyed by the pinned version, so a
# second run reuses the download, the unpacked sources and the finished binary:
#   $SLUICE_LLAMACPP_CACHE (default ~/.cache/sluice/llamacpp)/
#     llama_cpp_python-<ver>.tar.gz, llama_cpp_python-<ver>/, build-<ver>/bin/llama-server
#
# Env: LLAMACPP_PY_VERSION (pin), SLUICE_LLAMACPP_CACHE, PIP (a pip to download with),
#      BUILD_JOBS (default 2). Exit status is non-zero if the binary could not be produced.
set -euo pipefail

version=${LLAMACPP_PY_VERSION:-0.3.36}
cache=${SLUICE_LLAMACPP_CACHE:-$HOME/.cache/sluice/llamacpp}
jobs=${BUILD_JOBS:-2}
src=$cache/llama_cpp_python-$version/vendor/llama.cpp
build=$cache/build-$version
bin=$build/bin/llama-server

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

mkdir -p "$cache"
sdist=$cache/llama_cpp_python-$version.tar.gz
if [ ! -f "$sdist" ]; then
  pip=${PIP:-}
  if [ -z "$pip" ]; then
    if command -v pip3 >/dev/null; then pip="pip3"; else pip="python3 -m pip"; fi
  fi
  echo "downloading the llama-cpp-python $version source distribution into $cache" >&2
  # pip only prepares the sdist's metadata here; nothing is built or installed.
  $pip download -q --no-binary :all: --no-deps -d "$cache" "llama-cpp-python==$version" >&2
fi
if [ ! -f "$src/CMakeLists.txt" ]; then
  tar -xzf "$sdist" -C "$cache"
fi
[ -f "$src/tools/server/CMakeLists.txt" ] || { echo "no tools/server in $src" >&2; exit 1; }

# Offline-safe: no web UI (neither npm nor the prebuilt download; the server then embeds an
# empty asset table), no OpenSSL/curl (models are local files), static so the binary stands
# alone in the cache. LLAMA_CURL is only passed for older trees that still know it.
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
echo "configuring llama.cpp in $build" >&2
cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -Wno-dev >"$build.configure.log" 2>&1 \
  || { echo "llama.cpp configure failed; see $build.configure.log" >&2; exit 1; }
echo "building llama-server with $jobs jobs (a while on few cores); log: $build.build.log" >&2
cmake --build "$build" --target llama-server -j "$jobs" >"$build.build.log" 2>&1 \
  || { echo "llama-server build failed; see $build.build.log" >&2; exit 1; }
[ -x "$bin" ] || { echo "build finished but $bin is missing" >&2; exit 1; }
echo "$bin"
