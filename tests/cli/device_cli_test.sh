#!/usr/bin/env bash
# `sluice serve --device`: a bad value or bound is a usage error; --device cuda where it
# cannot run (a build without the CUDA backend, or no GPU) is one line and exit status 2;
# --device auto there serves on the CPU. With a SLUICE binary that has a device (the
# emulated server, or a GPU machine), --device auto serves on cuda instead.
# Usage: device_cli_test.sh SLUICE_BINARY SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
# shellcheck source=scripts/lib/wait_serving.sh
. "$src/scripts/lib/wait_serving.sh"
# shellcheck source=tests/cli/lib.sh
. "$src/tests/cli/lib.sh"
model="$src/tests/fixtures/gemma3_tiny_d256"

# refused NAME PATTERN ARGS...: `serve ARGS` exits non-zero at once, PATTERN in its output.
refused() {
  local name=$1 pattern=$2
  shift 2
  timeout 120 "$bin" serve --model "$model" --port 0 --grpc-port 0 "$@" >"$tmp/out" 2>&1
  local rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$rc" -lt 128 ]; then
    ok "$name: exit status $rc"
  else
    bad "$name: exit status $rc"
  fi
  if grep -q -- "$pattern" "$tmp/out"; then ok "$name: says so"; else bad "$name: $(head -c 600 "$tmp/out")"; fi
}

refused "--device tpu" "tpu not in {cpu,cuda,auto}" --device tpu
refused "--gpu-memory-utilization 1.5" "1.5 not in range" --gpu-memory-utilization 1.5
refused "--gpu-memory-utilization 0" "0 not in range" --gpu-memory-utilization 0

# Does this binary have a device? The emulated server always does; a CUDA build does
# where a GPU and its driver are.
has_device=no
case "$bin" in
  */cuda_emu_serve/*) has_device=yes ;;
  *) if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then has_device=yes; fi ;;
esac

if [ "$has_device" = no ]; then
  refused "--device cuda without a GPU" \
    "^sluice serve: \(--device cuda: this build has no CUDA backend\|no CUDA device: the CUDA backend needs an NVIDIA GPU\)" \
    --device cuda
  if [ "$(grep -cv '^\[sluice \(info\|warning\)\]' "$tmp/out")" = 1 ]; then
    ok "--device cuda without a GPU: one line"
  else
    bad "--device cuda without a GPU: $(cat "$tmp/out")"
  fi
  want=cpu
else
  want=cuda
fi

# --device auto serves on $want: the load line names it and a completion comes back.
"$bin" serve --device auto --model "$model" --port 0 --grpc-port 0 >"$tmp/log" 2>&1 &
pid=$!
if base=$(wait_serving "$tmp/log" "$pid" 1200); then
  if grep -q "loaded .* on $want " "$tmp/log"; then ok "--device auto: on $want"; else bad "--device auto: $(head -3 "$tmp/log")"; fi
  code=$(curl -s -m 120 -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary '{"model":"gemma3_tiny_d256","prompt":[2,10,11,12],"max_tokens":4,"temperature":0}' \
    "$base/v1/completions")
  if [ "$code" = 200 ] && grep -q '"completion_tokens":4' "$tmp/body"; then
    ok "--device auto: a completion"
  else
    bad "--device auto: completion $code $(head -c 400 "$tmp/body")"
  fi
  kill -TERM "$pid"
  wait "$pid"
  rc=$?
  pid=""
  if [ "$rc" = 0 ]; then ok "--device auto: exits 0 on SIGTERM"; else bad "--device auto: exit $rc"; fi
else
  bad "--device auto: did not start: $(head -c 600 "$tmp/log")"
fi
finish
