#!/usr/bin/env bash
# Packs `sluice` and `sluice-bench` of a CUDA-enabled build made here, with the shared
# libraries they load that a bare GPU machine lacks (gRPC, protobuf, absl, fmt, yaml-cpp,
# OpenSSL, ...; not glibc, and not the CUDA libraries, which come with the machine's
# toolkit), into build-gpu/serve/{,lib/} (git-ignored), for benchmarks/gpu/serve_check.sh
# to run there. Carry build-gpu/serve with the call.
#
# Usage: benchmarks/gpu/pack_serve.sh [BUILD_DIR]   (default: build, as scripts/test.sh
#        configures it; it must have been configured with the CUDA toolkit present)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
dest=build-gpu/serve
for b in sluice sluice-bench; do
  [ -x "$build/bin/$b" ] || { echo "pack_serve.sh: $build/bin/$b is missing: build it first" >&2; exit 1; }
done
probe=$(timeout 20 "$build/bin/sluice" serve --model tests/fixtures/gemma3_tiny --device cuda \
  --port 0 --grpc-port 0 2>&1 || true)
if [[ $probe == *"no CUDA backend"* ]]; then
  echo "pack_serve.sh: $build/bin/sluice was built without the CUDA backend" >&2
  exit 1
fi
rm -rf "$dest"
mkdir -p "$dest/lib"
cp "$build/bin/sluice" "$build/bin/sluice-bench" "$dest/"
# Every resolved library except glibc's own and the CUDA driver/toolkit libraries.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libcuda|libcudart|libcublas|libnccl|libnvidia)'
for b in sluice sluice-bench; do
  ldd "$build/bin/$b" | awk '$3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r name path; do
  if ! [[ $name =~ $skip ]]; then cp -L "$path" "$dest/lib/$name"; fi
done
echo "packed $(ls "$dest/lib" | wc -l) libraries, $(du -sh "$dest" | cut -f1), into $dest"
