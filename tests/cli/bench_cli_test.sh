#!/usr/bin/env bash
# sluice-bench end to end against a real `sluice serve` of the tiny fixture (no tokenizer:
# random token-id prompts on /v1/completions): 20 prompts of 16 tokens in, 8 out, at
# concurrency 4, checked through --save-result (vLLM's keys, exact token counts, numbers
# that agree with each other); then a concurrency sweep with tenants and goodput, and a
# usage error. The server binds --port 0; its port is read from its log line.
# Usage: bench_cli_test.sh SLUICE_BINARY SLUICE_BENCH_BINARY SOURCE_DIR
set -uo pipefail
bin=$1
bench=$2
src=$3
# shellcheck source=scripts/lib/wait_serving.sh
. "$src/scripts/lib/wait_serving.sh"
if [ ! -x "$bench" ]; then
  echo "skip: $bench not built (benchmarks off)"
  exit 0
fi
# shellcheck source=tests/cli/lib.sh
. "$src/tests/cli/lib.sh"

"$bin" serve --model "$src/tests/fixtures/gemma3_tiny" --threads 1 --port 0 >"$tmp/serve.log" 2>&1 &
pid=$!
if ! base=$(wait_serving "$tmp/serve.log" "$pid"); then
  echo "server did not start:"
  cat "$tmp/serve.log"
  exit 1
fi

# json_check FILE PYTHON: runs the Python expression-statements with `d` = the JSON file;
# an AssertionError names the failed check.
json_check() {
  python3 - "$1" "$2" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[2])
PY
}

"$bench" --base-url "$base" --num-prompts 20 --input-len 16 --output-len 8 --max-concurrency 4 --seed 1 \
  --save-result "$tmp/result.json" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" = 0 ]; then ok "exit code 0"; else bad "exit code $rc: $(tail -n 3 "$tmp/err")"; fi
check "table on stdout" grep -Eq '^Successful requests: +20$' "$tmp/out"
check "progress line on stderr" grep -q '20/20 done, 0 failed' "$tmp/err"
check "result saved" test -s "$tmp/result.json"
check "completed 20, failed 0" json_check "$tmp/result.json" 'assert d["completed"] == 20 and d["failed"] == 0, (d["completed"], d["failed"], d.get("errors"))'
check "vLLM keys present" json_check "$tmp/result.json" '
keys = ["completed", "failed", "duration", "request_throughput", "output_throughput", "total_token_throughput",
        "total_input_tokens", "total_output_tokens", "max_output_tokens_per_s", "request_goodput", "tenants",
        "total_cached_tokens", "max_concurrency", "request_rate", "num_prompts"]
keys += [f"{s}_{m}_ms" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "median", "std", "p90", "p95", "p99")]
missing = [k for k in keys if k not in d]
assert not missing, missing'
check "exact token counts (320 in, 160 out)" json_check "$tmp/result.json" '
assert d["total_input_tokens"] == 320 and d["total_output_tokens"] == 160, (d["total_input_tokens"], d["total_output_tokens"])
assert d["output_len_mismatches"] == 0 and d["input_lens_exact"] is True'
check "throughputs agree with the duration" json_check "$tmp/result.json" '
t = d["duration"]
assert 0 < t < 120, t
assert math.isclose(d["request_throughput"], 20 / t, rel_tol=1e-6), d["request_throughput"]
assert math.isclose(d["output_throughput"], 160 / t, rel_tol=1e-6), d["output_throughput"]
assert math.isclose(d["total_token_throughput"], 480 / t, rel_tol=1e-6), d["total_token_throughput"]
assert 0 < d["max_output_tokens_per_s"] <= 160, d["max_output_tokens_per_s"]'
check "latencies are ordered and bounded" json_check "$tmp/result.json" '
for m in ("ttft", "tpot", "itl", "e2el"):
    v = [d[f"{s}_{m}_ms"] for s in ("median", "p90", "p95", "p99")]
    assert all(x >= 0 for x in v) and v == sorted(v), (m, v)
    assert d[f"mean_{m}_ms"] >= 0 and d[f"std_{m}_ms"] >= 0, m
assert 0 < d["mean_ttft_ms"] <= d["mean_e2el_ms"] < d["duration"] * 1000, (d["mean_ttft_ms"], d["mean_e2el_ms"])
assert d["p99_e2el_ms"] <= d["duration"] * 1000
assert d["mean_tpot_ms"] * 7 <= d["mean_e2el_ms"] - d["mean_ttft_ms"] + 1e-6'
check "concurrency 4 respected, rate inf" json_check "$tmp/result.json" '
assert d["max_concurrency"] == 4 and 1 <= d["max_concurrent_requests"] <= 4, d["max_concurrent_requests"]
assert d["request_rate"] == "inf" and d["num_prompts"] == 20 and d["request_goodput"] is None'

# A sweep over two concurrency limits with two tenants (weights 1 and 2) and a goodput SLO:
# one JSON record per run.
"$bench" --base-url "$base" --num-prompts 3 --input-len 8 --output-len 4 --max-concurrency 1,2 \
  --tenant sk-one:inf --tenant sk-two:inf:2 --goodput ttft:60000 e2el:60000 \
  --save-result "$tmp/sweep.json" >"$tmp/sweep.out" 2>"$tmp/sweep.err"
rc=$?
if [ "$rc" = 0 ]; then ok "sweep: exit code 0"; else bad "sweep: exit code $rc: $(tail -n 3 "$tmp/sweep.err")"; fi
check "sweep: two records, each 6 completed" json_check "$tmp/sweep.json" '
assert isinstance(d, list) and len(d) == 2, d
assert [r["max_concurrency"] for r in d] == [1, 2]
for r in d:
    assert r["completed"] == 6 and r["failed"] == 0, r.get("errors")
    assert r["request_goodput"] is not None and r["request_goodput"] > 0'
check "sweep: tenants and Jain's index" json_check "$tmp/sweep.json" '
for r in d:
    t = r["tenants"]
    assert sorted(t) == ["tenant0", "tenant1"], list(t)
    assert t["tenant0"]["completed"] == 3 and t["tenant1"]["completed"] == 3
    assert t["tenant1"]["weight"] == 2 and t["tenant0"]["service_tokens"] == 3 * (8 + 2 * 4)
    assert 0.5 <= r["jain_fairness_index"] <= 1.0, r["jain_fairness_index"]
    assert "sk-one" not in json.dumps(r)'
check "sweep: summary table" grep -q 'TTFT mean' "$tmp/sweep.out"

"$bench" --base-url "$base/v1" >"$tmp/bad.out" 2>&1
rc=$?
check "base URL ending in /v1: usage error" eval '[ "$rc" = 2 ] && grep -q "must not end in /v1" "$tmp/bad.out"'

kill -TERM "$pid"
wait "$pid"
pid=""
finish
