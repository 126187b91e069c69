#!/usr/bin/env bash
# `sluice serve` end to end on a device: for each fixture, start the daemon, then check a
# greedy completion (8 ids), n = 3 (three choices of 8 ids), a stream (ids, usage, [DONE]),
# a short sluice-bench sweep (concurrency 1 and 16, no failures), /metrics (the KV gauge
# back at 0) and a drain on SIGTERM (exit 0). Prints PASS/FAIL per check into
# $OUT/serve_check.txt (logs beside it) and exits non-zero when any check failed.
#
# On the GPU machine, with build-gpu/serve carried (benchmarks/gpu/pack_serve.sh):
#   benchmarks/gpu/serve_check.sh
# Here, to check the script itself on the CPU build:
#   SERVE_DIR=build/bin benchmarks/gpu/serve_check.sh --device cpu
# and on the CUDA emulator (ctest cli.serve_cuda_emu, with a smaller sweep):
#   SERVE_DIR=build/cuda_emu_serve SERVE_BENCH_PROMPTS=16 SERVE_BENCH_OUTPUT_LEN=8 \
#     benchmarks/gpu/serve_check.sh --device cuda
set -uo pipefail
cd "$(dirname "$0")/../.."
device=cuda
[ "${1:-}" = "--device" ] && device=$2
dir=${SERVE_DIR:-build-gpu/serve}
bench_prompts=${SERVE_BENCH_PROMPTS:-48}
bench_output_len=${SERVE_BENCH_OUTPUT_LEN:-32}
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
report=$OUT/serve_check.txt
: > "$report"
[ -d "$dir/lib" ] && export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fails=0
check() {  # check NAME CONDITION-RESULT(0/1) DETAIL
  if [ "$2" = 0 ]; then echo "PASS $1" | tee -a "$report"; else
    echo "FAIL $1: $3" | tee -a "$report"; fails=$((fails + 1)); fi
}
py() { local code=$1; shift; python3 -c "$code" "$@" 2>&1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
for m in gemma3_tiny_d256 gemma4_e2b_realdims gemma4_moe_realdims; do
  log=$OUT/serve_$m.log
  "$dir/sluice" serve --device "$device" --model "tests/fixtures/$m" --port "$port" --grpc-port 0 \
    --max-num-seqs 16 > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do grep -q "serving" "$log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.2; done
  if ! grep -q serving "$log"; then
    check "$m: starts on $device" 1 "$(tail -3 "$log")"
    kill -9 $pid 2>/dev/null; continue
  fi
  check "$m: starts on $device" 0 ""
  r=$(curl -s "$url/v1/completions" -d '{"prompt":[2,17,300,45,99],"max_tokens":8,"temperature":0,"ignore_eos":true}')
  out=$(py "import json,sys; c=json.loads(sys.argv[1])['choices']; assert len(c)==1 and len(c[0]['token_ids'])==8, c; print('ok')" "$r")
  check "$m: greedy completion, 8 ids" "$([ "$out" = ok ]; echo $?)" "$r"
  r=$(curl -s "$url/v1/completions" -d '{"prompt":[2,17,300,45,99],"max_tokens":8,"temperature":0.8,"seed":5,"n":3,"ignore_eos":true}')
  out=$(py "import json,sys; c=json.loads(sys.argv[1])['choices']; assert len(c)==3 and all(len(x['token_ids'])==8 for x in c), c; print('ok')" "$r")
  check "$m: n=3, 8 ids each" "$([ "$out" = ok ]; echo $?)" "$r"
  s=$(curl -sN "$url/v1/completions" -d '{"prompt":[2,17,300],"max_tokens":4,"stream":true,"ignore_eos":true,"stream_options":{"include_usage":true}}')
  out=$(py "
import json,sys
ev=[l[6:] for l in sys.argv[1].splitlines() if l.startswith('data: ')]
assert ev[-1]=='[DONE]', ev[-1:]
ids=[t for e in ev[:-1] for c in json.loads(e)['choices'] for t in c.get('token_ids') or []]
usage=[json.loads(e)['usage'] for e in ev[:-1] if json.loads(e).get('usage')]
assert len(ids)==4 and usage and usage[-1]['completion_tokens']==4, (ids, usage)
print('ok')" "$s")
  check "$m: stream, 4 ids, usage, [DONE]" "$([ "$out" = ok ]; echo $?)" "$(echo "$s" | tail -c 300)"
  if [ -x "$dir/sluice-bench" ]; then
    timeout 120 "$dir/sluice-bench" --base-url "$url" --endpoint completions --dataset random \
      --input-len 64 --output-len "$bench_output_len" --num-prompts "$bench_prompts" --max-concurrency 1,16 \
      --save-result "$OUT/serve_bench_$m.json" > "$OUT/serve_bench_$m.txt" 2>&1
    rc=$?
    out=$(py "
import json
d=json.load(open('$OUT/serve_bench_$m.json'))
d=d if isinstance(d,list) else [d]
assert all(x['failed']==0 and x['completed']>0 for x in d), [(x['failed'],x['completed']) for x in d]
print('ok')")
    check "$m: sluice-bench conc 1,16, no failures" "$([ $rc = 0 ] && [ "$out" = ok ]; echo $?)" "rc $rc, $out"
  fi
  kv=$(curl -s "$url/metrics" | awk '/^vllm:kv_cache_usage_perc/ { print $2 }')
  check "$m: /metrics, KV usage back to 0" "$(py "print(0 if float('${kv:-nan}')==0 else 1)")" "kv_cache_usage_perc=$kv"
  kill -TERM $pid
  wait $pid
  rc=$?
  check "$m: SIGTERM drains, exit 0" "$([ $rc = 0 ]; echo $?)" "exit $rc"
done
echo "serve_check: $fails failed" | tee -a "$report"
[ $fails = 0 ]
