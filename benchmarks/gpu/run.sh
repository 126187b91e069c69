#!/usr/bin/env bash
# The GPU suite in one command, for a lent GPU machine (CUDA toolkit, CMake, Ninja, a
# compiler; no apt, no PyPI, no -dev packages):
#   1. builds the "gpu" preset (sm_90a) with every core,
#   2. runs the CUDA parity tests (ctest label gpu),
#   3. when build-gpu/serve was packed here and carried (benchmarks/gpu/pack_serve.sh), runs
#      `sluice serve --device cuda` end to end (benchmarks/gpu/serve_check.sh),
#   4. runs every GPU benchmark (build-gpu/bin/gpu_*_bench).
# Results go under $OUT (default ./gpu-results): summary.txt (device, test verdicts, every
# benchmark's table), results.json (every benchmark's records), tests.log, build.log.
#
# Before the call, on a machine with the Debian packages: scripts/gpu-deps.sh, then carry
# .gpu-deps. Usage: benchmarks/gpu/run.sh [--quick] [--tests-only] [--bench-only]
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
quick="" run_tests=1 run_bench=1
for a in "$@"; do
  case $a in
    --quick) quick=--quick ;;
    --tests-only) run_bench=0 ;;
    --bench-only) run_tests=0 ;;
    *) echo "run.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
summary=$OUT/summary.txt
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }

if [[ ! -f .gpu-deps/include/fmt/format.h ]]; then
  note "run.sh: .gpu-deps is missing: run scripts/gpu-deps.sh here first and carry .gpu-deps"
  exit 2
fi
note "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader \
  2>&1 | tee -a "$summary"
note "$(nvcc --version | tail -1); $(cmake --version | head -1); $(c++ --version | head -1); $(nproc) cores"

note "== build ($(elapsed))"
if ! { cmake --preset gpu && cmake --build --preset gpu -j "$(nproc)"; } > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  note "BUILD FAILED after $(elapsed) (see build.log)"
  exit 1
fi
note "built in $(elapsed)"

status=0
if (( run_tests )); then
  note "== gpu tests ($(elapsed))"
  ctest --test-dir build-gpu -L gpu --output-on-failure --timeout 300 -j 4 > "$OUT/tests.log" 2>&1 || status=1
  grep -E "tests passed|tests failed|\*\*\*Failed|Failed  |Timeout|Exception" "$OUT/tests.log" | tee -a "$summary"
  grep -E "^\s+[0-9]+ - " "$OUT/tests.log" | head -60 | tee -a "$summary"
fi

# `sluice serve --device cuda` end to end, when its binaries were packed and carried
# (benchmarks/gpu/pack_serve.sh): the fixtures served, requests, a short sweep, a drain.
if (( run_tests )) && [[ -x build-gpu/serve/sluice ]]; then
  note "== serve on the GPU ($(elapsed))"
  OUT=$OUT timeout 300 benchmarks/gpu/serve_check.sh --device cuda > "$OUT/serve_check.log" 2>&1 \
    || status=1
  grep -E "^(FAIL|serve_check)" "$OUT/serve_check.txt" 2>/dev/null | tee -a "$summary"
fi

if (( run_bench )); then
  note "== benchmarks ($(elapsed))"
  jsons=()
  for b in build-gpu/bin/gpu_*_bench; do
    [[ -x $b ]] || continue
    name=$(basename "$b")
    note "-- $name ($(elapsed))"
    timeout 180 "$b" $quick --json "$OUT/$name.json" 2>&1 | tee -a "$summary"
    if (( PIPESTATUS[0] != 0 )); then
      note "$name FAILED or timed out"
      status=1
    fi
    [[ -f $OUT/$name.json ]] && jsons+=("$OUT/$name.json")
  done
  # One results.json with every benchmark's report (the call brings back few files).
  {
    echo "["
    sep=""
    for j in "${jsons[@]}"; do printf '%s' "$sep"; cat "$j"; sep=","; done
    echo "]"
  } > "$OUT/results.json"
  rm -f "${jsons[@]}"
fi
note "== done in $(elapsed), status $status"
exit $status
