#!/usr/bin/env bash
# Noisy neighbour: how much a heavy tenant A slows a light tenant B, under each scheduling
# policy. Starts `sluice serve` with a tenants file of A and B (fresh random keys, their
# SHA-256 digests in the file) and measures B's time to first token with sluice-bench:
#   1. B alone, at B_RATE requests/s;
#   2. B with A at RATE_MULT x B_RATE, --scheduling-policy fair;
#   3. the same with --scheduling-policy fcfs.
# A and B are separate sluice-bench processes, each its own Poisson stream, A sized to last
# as long as B; A is stopped once B's run ends (its open requests are then cancelled).
# Prints one table of B's TTFT p50 / p99 (ms) and the machine's load average.
#
# Usage: noisy_neighbour.sh [BIN_DIR] (default: build/bin); settings from the environment:
#   MODEL (default: the 270M Gemma 3), THREADS (2), B_RATE (0.5), RATE_MULT (10), B_PROMPTS (30),
#   INPUT_LEN (32), OUTPUT_LEN (16), MAX_NUM_SEQS (8), WORK_DIR (a temporary directory).
set -uo pipefail
# shellcheck source=scripts/lib/wait_serving.sh
. "$(dirname "$0")/../scripts/lib/wait_serving.sh"

bin_dir=${1:-build/bin}
sluice=$bin_dir/sluice
bench=$bin_dir/sluice-bench
model=${MODEL:-default}
# `default` is looked up next to the binary's repository; a build outside the tree gets the
# checkout's copy.
repo_model=$(dirname "$0")/../models/gemma-3-270m-q4_k_m.gguf
if [ "$model" = default ] && [ -f "$repo_model" ]; then model=$repo_model; fi
threads=${THREADS:-2}
b_rate=${B_RATE:-0.5}
rate_mult=${RATE_MULT:-10}
b_prompts=${B_PROMPTS:-30}
input_len=${INPUT_LEN:-32}
output_len=${OUTPUT_LEN:-16}
max_num_seqs=${MAX_NUM_SEQS:-8}
for f in "$sluice" "$bench"; do
  if [ ! -x "$f" ]; then
    echo "noisy_neighbour: $f is not an executable (give the bin directory)" >&2
    exit 2
  fi
done

work=${WORK_DIR:-$(mktemp -d)}
mkdir -p "$work"
server_pid=""
a_pid=""
cleanup() {
  if [ -n "$a_pid" ]; then kill -KILL "$a_pid" 2>/dev/null; fi
  if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null; fi
}
trap cleanup EXIT

key_a=sk-a-$(openssl rand -hex 16)
key_b=sk-b-$(openssl rand -hex 16)
digest() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
cat >"$work/tenants.yaml" <<EOF
tenants:
  - id: tenant-a
    api_key_sha256: "$(digest "$key_a")"
    weight: 1.0
  - id: tenant-b
    api_key_sha256: "$(digest "$key_b")"
    weight: 1.0
EOF

# start_server POLICY: serves on a free port; sets server_pid and base.
start_server() {
  local log=$work/server-$1.log
  "$sluice" serve --model "$model" --threads "$threads" --tenants "$work/tenants.yaml" \
    --scheduling-policy "$1" --max-num-seqs "$max_num_seqs" --port 0 --grpc-port 0 \
    >"$log" 2>&1 &
  server_pid=$!
  if base=$(wait_serving "$log" "$server_pid" 1200); then return 0; fi
  echo "noisy_neighbour: the server did not start:" >&2
  cat "$log" >&2
  exit 1
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null
  for _ in $(seq 300); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=""
}

# run_tenant NAME KEY RATE PROMPTS SEED: one sluice-bench stream, its result in NAME.json.
run_tenant() {
  "$bench" --base-url "$base" --endpoint completions --dataset random \
    --input-len "$input_len" --output-len "$output_len" --vocab-size 262144 \
    --num-prompts "$4" --tenant "$2:$3" --seed "$5" --save-result "$work/$1.json" \
    >"$work/$1.out" 2>"$work/$1.err"
}

# phase NAME POLICY WITH_A: B's run (A's beside it when WITH_A is 1).
phase() {
  local name=$1 policy=$2 with_a=$3
  start_server "$policy"
  if [ "$with_a" = 1 ]; then
    local a_rate a_prompts
    a_rate=$(awk -v r="$b_rate" -v m="$rate_mult" 'BEGIN { print r * m }')
    a_prompts=$((b_prompts * rate_mult))
    run_tenant "$name-a" "$key_a" "$a_rate" "$a_prompts" 2 &
    a_pid=$!
  fi
  local started=$SECONDS
  run_tenant "$name-b" "$key_b" "$b_rate" "$b_prompts" 1 || {
    echo "noisy_neighbour: B's run ($name) failed:" >&2
    tail -n 20 "$work/$name-b.err" >&2
  }
  if [ -n "$a_pid" ]; then
    # KILL: the bench would otherwise finish its requests, and the server's drain with them.
    kill -KILL "$a_pid" 2>/dev/null
    wait "$a_pid" 2>/dev/null
    a_pid=""
  fi
  stop_server
  echo "noisy_neighbour: $name done in $((SECONDS - started)) s" >&2
}

phase alone fair 0
phase fair fair 1
phase fcfs fcfs 1

load=$(cut -d' ' -f1-3 /proc/loadavg)
a_rate=$(awk -v r="$b_rate" -v m="$rate_mult" 'BEGIN { print r * m }')
echo
echo "B: $b_rate req/s, $b_prompts requests; A: $a_rate req/s; prompts $input_len, outputs" \
  "$output_len tokens; --threads $threads, --max-num-seqs $max_num_seqs; load average $load"
printf '%-22s %10s %10s %10s %8s\n' "tenant B" "TTFT p50" "TTFT p99" "completed" "failed"
for name in alone fair fcfs; do
  label=$name
  [ "$name" = fair ] && label="with A, fair"
  [ "$name" = fcfs ] && label="with A, fcfs"
  [ "$name" = alone ] && label="alone"
  if [ -f "$work/$name-b.json" ]; then
    jq -r --arg l "$label" \
      '[$l, (.median_ttft_ms * 10 | round / 10 | tostring) + " ms",
        (.p99_ttft_ms * 10 | round / 10 | tostring) + " ms", .completed, .failed] | @tsv' \
      "$work/$name-b.json" |
      awk -F'\t' '{ printf "%-22s %10s %10s %10s %8s\n", $1, $2, $3, $4, $5 }'
  else
    printf '%-22s %10s\n' "$label" "(no result)"
  fi
done
echo "(files: $work)"
