#!/usr/bin/env bash
# Serving comparison: sluice vs llama.cpp's own `llama-server` (continuous batching over
# --parallel slots) on the same GGUF with the same CPU thread count, both measured by the
# same sluice-bench sweep (completions endpoint, token-id prompts, ignore_eos so every
# request generates exactly --output-len tokens, closed loop at each concurrency).
# Prints one table with sluice / llama.cpp ratios of output tok/s, TTFT p50 and TPOT p50.
#
# llama-server is built from the llama.cpp sources vendored in the llama-cpp-python source
# distribution on PyPI (benchmarks/llamacpp/build_llama_server.sh; cached outside the tree,
# so only the first run pays for the build). If that build fails, llama-cpp-python's own
# server (`python -m llama_cpp.server`, one request at a time) stands in, and the table
# says so.
#
# Usage: benchmarks/compare_llamacpp.sh [--threads N] [--model GGUF] [--concurrency 1,4,16]
#          [--input-len N] [--output-len N] [--rounds R] [--min-prompts N]
#          [--num-prompts N1,N2,...] [--seed S] [--out DIR] [--python-server]
#   Each concurrency C runs max(min-prompts, R * C) requests (defaults R = 2, min 4), or
#   the --num-prompts entry at C's position in the --concurrency list.
#   --python-server skips llama-server and uses the llama-cpp-python fallback.
# Env: SLUICE_BIN, SLUICE_BENCH_BIN (default build/bin/...), LLAMA_SERVER_BIN (skip the
#      build and use this binary), LLAMACPP_PY_VERSION, SLUICE_LLAMACPP_CACHE, VENV (.venv),
#      EOS_TOKEN_IDS (banned through logit_bias if a server refuses ignore_eos; Gemma's 1,106).
set -euo pipefail
cd "$(dirname "$0")/.."

threads=2
model=models/gemma-3-270m-q4_k_m.gguf
concurrency=1,4,16
input_len=128
output_len=128
rounds=2
min_prompts=4
num_prompts=""
seed=0
out=""
python_server=0
while (($#)); do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --input-len) input_len=$2; shift 2 ;;
    --output-len) output_len=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --min-prompts) min_prompts=$2; shift 2 ;;
    --num-prompts) num_prompts=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --python-server) python_server=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done

sluice_bin=${SLUICE_BIN:-build/bin/sluice}
bench_bin=${SLUICE_BENCH_BIN:-build/bin/sluice-bench}
venv=${VENV:-.venv}
# The pinned llama-cpp-python release whose sdist supplies llama.cpp (the builder reads it).
export LLAMACPP_PY_VERSION=${LLAMACPP_PY_VERSION:-0.3.36}
for b in "$sluice_bin" "$bench_bin"; do
  [ -x "$b" ] || { echo "missing $b (build it, or set SLUICE_BIN / SLUICE_BENCH_BIN)" >&2; exit 1; }
done
[ -f "$model" ] || { echo "missing model $model" >&2; exit 1; }
out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/compare_llamacpp.XXXXXX")}
mkdir -p "$out"

IFS=, read -r -a concs <<<"$concurrency"
IFS=, read -r -a nps <<<"$num_prompts"
if ((${#nps[@]} && ${#nps[@]} != ${#concs[@]})); then
  echo "--num-prompts needs one count per --concurrency entry" >&2; exit 2
fi
max_conc=0
for c in "${concs[@]}"; do ((c > max_conc)) && max_conc=$c; done

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# Two distinct free ports, found while both are held.
read -r llama_port sluice_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')

# wait_ready NAME URL PID: polls URL until it answers 200 (both servers answer 503 while
# loading), failing early if the server process died.
wait_ready() {
  local name=$1 url=$2 pid=$3
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before it was ready; log: $out/$name.log" >&2; tail -20 "$out/$name.log" >&2
      return 1
    fi
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ] && return 0
    sleep 0.5
  done
  echo "$name not ready after 300 s; log: $out/$name.log" >&2
  return 1
}

# ---- the llama.cpp side -----------------------------------------------------------------
llama_kind=llama-server
llama_bin=${LLAMA_SERVER_BIN:-}
if ((!python_server)) && [ -z "$llama_bin" ]; then
  pip_cmd=""
  [ -x "$venv/bin/pip" ] && pip_cmd="$venv/bin/pip"
  if ! llama_bin=$(PIP=$pip_cmd benchmarks/llamacpp/build_llama_server.sh); then
    echo "llama-server could not be built: falling back to llama-cpp-python's server" >&2
    python_server=1
  fi
fi
((python_server)) && llama_kind=llama-cpp-python

if [ "$llama_kind" = llama-server ]; then
  # One slot per request in flight at the largest concurrency, each with room for its prompt
  # and output; continuous batching is llama-server's default (stated anyway).
  ctx=$(((input_len + output_len + 64) * max_conc))
  "$llama_bin" -m "$model" --host 127.0.0.1 --port "$llama_port" \
    --threads "$threads" --threads-batch "$threads" \
    --parallel "$max_conc" --cont-batching --ctx-size "$ctx" \
    >"$out/llama.log" 2>&1 &
  llama_pid=$!
  llama_ready=/health
  llama_desc="llama-server (llama.cpp vendored in llama-cpp-python $LLAMACPP_PY_VERSION), --parallel $max_conc, continuous batching"
else
  py=$venv/bin/python
  if ! "$py" -c 'import llama_cpp.server.app, uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings' 2>/dev/null; then
    echo "installing llama-cpp-python's server dependencies into $venv" >&2
    "$venv/bin/pip" install -q uvicorn fastapi sse-starlette starlette-context pydantic-settings >&2
  fi
  "$py" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$llama_port" \
    --n_threads "$threads" --n_threads_batch "$threads" --n_ctx $((input_len + output_len + 64)) \
    --interrupt_requests False \
    >"$out/llama.log" 2>&1 &
  llama_pid=$!
  llama_ready=/v1/models
  llama_desc="llama-cpp-python server: ONE request at a time, ignores ignore_eos (EOS banned via logit_bias), no usage in streams (tokens counted by the client)"
fi
pids+=("$llama_pid")

# ---- sluice -------------------------------------------------------------------------------
"$sluice_bin" serve --model "$model" --host 127.0.0.1 --port "$sluice_port" --grpc-port 0 \
  --threads "$threads" >"$out/sluice.log" 2>&1 &
sluice_pid=$!
pids+=("$sluice_pid")

wait_ready llama "http://127.0.0.1:$llama_port$llama_ready" "$llama_pid"
wait_ready sluice "http://127.0.0.1:$sluice_port/ready" "$sluice_pid"

# Both servers draw random prompts from the same id range: the vocabulary size from
# llama-server's /v1/models metadata (n_vocab), else sluice-bench probes sluice once and the
# probe's answer is reused for llama.cpp.
vocab=$(curl -s "http://127.0.0.1:$llama_port/v1/models" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print(next(m["meta"]["n_vocab"] for m in d.get("data", []) if m.get("meta")))
except Exception:
    print("")' || true)

# Gemma's EOS ids (<eos> 1, <end_of_turn> 106): only used if a server refuses ignore_eos.
eos_ids=${EOS_TOKEN_IDS:-1,106}

# Runs are interleaved (each concurrency: sluice, then llama.cpp) so that drift in the
# machine's load hits both servers alike. Each server is idle while the other is measured.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
i=0
for c in "${concs[@]}"; do
  if ((${#nps[@]})); then
    n=${nps[i]}
  else
    n=$((rounds * c)); ((n < min_prompts)) && n=$min_prompts
  fi
  for side in sluice llama; do
    if [ $side = sluice ]; then port=$sluice_port; else port=$llama_port; fi
    vflag=()
    [ -n "$vocab" ] && vflag=(--vocab-size "$vocab")
    echo "[$(date +%T)] $side: concurrency $c, $n prompts" >&2
    "$bench_bin" --base-url "http://127.0.0.1:$port" --endpoint completions --dataset random \
      --input-len "$input_len" --output-len "$output_len" --num-prompts "$n" \
      --request-rate inf --max-concurrency "$c" --seed $((seed + i)) \
      --eos-token-ids "$eos_ids" "${vflag[@]}" \
      --save-result "$out/$side-c$c.json" >"$out/$side-c$c.txt" 2>&1 \
      || { echo "sluice-bench failed against $side (c=$c): $out/$side-c$c.txt" >&2; tail -20 "$out/$side-c$c.txt" >&2; exit 1; }
    if [ -z "$vocab" ]; then  # learn the probed size once, reuse it for every later run
      vocab=$(grep -oE 'token ids accepted by .*\[0, [0-9]+\)' "$out/$side-c$c.txt" \
        | grep -oE '[0-9]+\)$' | tr -d ')' | head -1 || true)
    fi
  done
  i=$((i + 1))
done
elapsed=$(($(date +%s) - t0))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
# Peak resident set of each server over the whole run (VmHWM, KiB), read before they stop.
peak_rss() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
sluice_rss=$(peak_rss "$sluice_pid")
llama_rss=$(peak_rss "$llama_pid")

python3 - "$out" "$model" "$threads" "$input_len" "$output_len" "$llama_desc" \
  "$load_before" "$load_after" "$elapsed" "${vocab:-probed}" "$sluice_rss" "$llama_rss" \
  "${concs[@]}" <<'PY'
import json, os, sys
out, model, threads, ilen, olen, llama_desc, lb, la, elapsed, vocab, srss, lrss = sys.argv[1:13]
concs = sys.argv[13:]

def load(side, c):
    with open(os.path.join(out, f"{side}-c{c}.json")) as f:
        d = json.load(f)
    return d[0] if isinstance(d, list) else d

def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "n/a"

print(f"model {model}, {threads} threads each, random {ilen} in / {olen} out, "
      f"/v1/completions, token-id prompts, ignore_eos, closed loop, vocab ids [4, {vocab})")
print(f"llama.cpp: {llama_desc}")
print("ratio = sluice / llama.cpp: above 1 favours sluice for tok/s, below 1 for TTFT and TPOT")
hdr = (f"{'conc':>4} {'reqs':>4} | {'out tok/s':>9} {'llama':>7} {'ratio':>5} | "
       f"{'TTFT p50 ms':>11} {'llama':>8} {'ratio':>5} | {'TPOT p50 ms':>11} {'llama':>7} "
       f"{'ratio':>5} | {'fail':>4} {'len!=':>5}")
print(hdr)
print("-" * len(hdr))
for c in concs:
    s, l = load("sluice", c), load("llama", c)
    so, lo = s["output_throughput"], l["output_throughput"]
    st, lt = s["median_ttft_ms"], l["median_ttft_ms"]
    sp, lp = s["median_tpot_ms"], l["median_tpot_ms"]
    fail = f"{s.get('failed', 0)}/{l.get('failed', 0)}"
    mism = f"{s.get('output_len_mismatches', 0)}/{l.get('output_len_mismatches', 0)}"
    print(f"{c:>4} {s['completed']:>4} | {so:>9.1f} {lo:>7.1f} {ratio(so, lo):>5} | "
          f"{st:>11.1f} {lt:>8.1f} {ratio(st, lt):>5} | {sp:>11.2f} {lp:>7.2f} "
          f"{ratio(sp, lp):>5} | {fail:>4} {mism:>5}")
    for side, d in (("sluice", s), ("llama.cpp", l)):
        if not d.get("ignore_eos", True):
            print(f"     note: {side} refused ignore_eos; EOS was banned through logit_bias")
        if d.get("errors"):
            print(f"     {side} errors: {d['errors']}")
if "1" in concs:
    s, l = load("sluice", "1"), load("llama", "1")
    sp, lp = (int(ilen) * 1000 / d["median_ttft_ms"] if d["median_ttft_ms"] else 0 for d in (s, l))
    sd, ld = (1000 / d["median_tpot_ms"] if d["median_tpot_ms"] else 0 for d in (s, l))
    print(f"batch 1: prefill {sp:.1f} vs {lp:.1f} tok/s ({ratio(sp, lp)}x; prompt / TTFT p50), "
          f"decode {sd:.1f} vs {ld:.1f} tok/s ({ratio(sd, ld)}x; 1 / TPOT p50)")
srss, lrss = int(srss or 0), int(lrss or 0)
print(f"peak RSS (VmHWM): sluice {srss / 1024:.1f} MiB, llama.cpp {lrss / 1024:.1f} MiB "
      f"(ratio {ratio(srss, lrss)})")
print(f"fail and len!= are sluice/llama.cpp counts (failed requests; outputs whose length != {olen})")
print(f"load average 1/5/15 min: {lb} before, {la} after; measured for {elapsed} s; raw JSON in {out}")
PY
