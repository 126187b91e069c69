#!/usr/bin/env bash
# `sluice serve --device cuda` on a device without room for the model (the emulated server,
# its device memory set by SLUICE_EMU_DEVICE_MEMORY_MB): each place the memory can run out
# at start-up (the cuBLASLt workspace, a scratch buffer, the KV cache) is one line naming
# GPU memory and exit status 2, never an abort or a hang. The step sizes are pinned: the
# scratch buffers, and so the sizes below, follow them.
# Usage: serve_no_room_test.sh SLUICE_BINARY SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
# shellcheck source=tests/cli/lib.sh
. "$src/tests/cli/lib.sh"
model="$src/tests/fixtures/gemma3_tiny_d256"

# no_room MIB WHAT PATTERN: the server refuses to start with PATTERN in its one error line.
no_room() {
  local mib=$1 what=$2 pattern=$3
  SLUICE_EMU_DEVICE_MEMORY_MB=$mib timeout 120 "$bin" serve --device cuda --model "$model" \
    --max-num-seqs 128 --max-num-batched-tokens 2048 --port 0 --grpc-port 0 >"$tmp/out" 2>&1
  local rc=$?
  # The log's info lines (plain or JSON) aside, what is left is the error.
  grep -v '^\[sluice \(info\|warning\)\]' "$tmp/out" | grep -v '^{' >"$tmp/error"
  if [ "$rc" = 2 ]; then ok "$what: exit status 2"; else bad "$what: exit status $rc"; fi
  if [ "$(wc -l <"$tmp/error")" = 1 ]; then
    ok "$what: one line"
  else
    bad "$what: $(wc -l <"$tmp/error") lines: $(head -c 600 "$tmp/error")"
  fi
  if grep -q -- "^sluice serve: GPU memory: $pattern" "$tmp/error"; then
    ok "$what: names it"
  else
    bad "$what: $(head -c 600 "$tmp/error")"
  fi
}

no_room 1 "1 MiB (the cuBLASLt workspace)" "the cuBLASLt workspace (32 MiB) cannot be allocated"
no_room 34 "34 MiB (a scratch buffer)" "cannot allocate .* for .* (out of memory); .* free"
no_room 44 "44 MiB (the KV cache)" "the model does not fit: .* it needs at least"
finish
