#!/usr/bin/env bash
# `sluice inspect` end to end: the four released Gemma 4 configs (tests/fixtures/gemma4_configs,
# figures cross-checked with expected_plan.json, which transformers wrote), a checkpoint
# directory, and bad paths that must each give one line on stderr and exit code 2.
# Usage: inspect_cli_test.sh SLUICE_BINARY SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
# shellcheck source=tests/cli/lib.sh
. "$src/tests/cli/lib.sh"

# inspect NAME ARGS...: runs inspect into $tmp/out; must exit 0.
inspect() {
  local name=$1
  shift
  "$bin" inspect "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -eq 0 ]; then ok "$name runs"; else bad "$name: rc=$rc: $(head -c 300 "$tmp/err")"; fi
}

# expect NAME TEXT: the last inspect output holds TEXT (a fixed string) on some line.
expect() {
  if grep -qF -- "$2" "$tmp/out"; then ok "$1: $2"; else bad "$1: no line with '$2'"; fi
}

# expect_error NAME PATTERN ARGS...: exit code 2 and exactly one error line on stderr (info
# log lines aside), matching PATTERN, and nothing on stdout.
expect_error() {
  local name=$1 pattern=$2
  shift 2
  "$bin" inspect "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  grep -v '^\[sluice info\]' "$tmp/err" >"$tmp/err.lines"
  local lines
  lines=$(wc -l <"$tmp/err.lines")
  if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$tmp/err.lines" && [ ! -s "$tmp/out" ]; then
    ok "$name"
  else
    bad "$name (rc=$rc, $lines stderr lines): $(head -c 300 "$tmp/err")"
  fi
}

cfg="$src/tests/fixtures/gemma4_configs"

inspect e2b --model "$cfg/e2b/config.json"
expect e2b "gemma4: 35 layers (28 sliding, 7 global), hidden 1536"
expect e2b "MLP               6144 (12288 on KV-shared layers)"
expect e2b "KV sharing        last 20 layers (15-34) read an earlier layer's K/V"
expect e2b "per token                  bf16 18432 B, f32 36864 B"
expect e2b "layer 14's K/V also serves layers [19,24,29,34]"
expect e2b "estimated from config      4628569379 (4.629 B) params"

# A directory holding only config.json: the same plan, weights estimated.
inspect e4b --model "$cfg/e4b"
expect e4b "gemma4: 42 layers (35 sliding, 7 global), hidden 2560"
expect e4b "KV sharing        last 18 layers (24-41) read an earlier layer's K/V"
expect e4b "   24  sliding       256         2  <- 22 (g0)"
expect e4b "g1: global, 2 KV heads x 512, 4 layers [5,11,17,23]"
expect e4b "per token                  bf16 57344 B, f32 114688 B"
expect e4b "at 131072 tokens           bf16 2168455168 B (2.02 GiB)"
expect e4b "estimated from config      7463013418 (7.463 B) params: bf16 14926026836 B (13.90 GiB)"
expect e4b "checkpoint                 none (config only)"

inspect 26b_a4b --model "$cfg/26b_a4b/config.json"
expect 26b_a4b "gemma4: 30 layers (25 sliding, 5 global), hidden 2816"
expect 26b_a4b "MoE               128 experts, top 8, expert width 704, beside the dense MLP"
expect 26b_a4b "global            5 layers, head dim 512, 2 KV heads (K=V: no v_proj)"
expect 26b_a4b "per token                  bf16 225280 B, f32 450560 B"
expect 26b_a4b "estimated from config      25233141790 (25.233 B) params"
expect 26b_a4b "active per token 3822530590 (3.823 B)"

inspect 31b --model "$cfg/31b/config.json" --max-model-len 4096
expect 31b "gemma4: 60 layers (50 sliding, 10 global), hidden 5376"
expect 31b "global            10 layers, head dim 512, 4 KV heads (K=V: no v_proj)"
expect 31b "per token                  bf16 901120 B, f32 1802240 B"
# 50 sliding layers hold 1024 tokens, 10 global layers all 4096.
expect 31b "at 4096 tokens             bf16 1174405120 B (1.09 GiB)"
expect 31b "estimated from config      30697345340 (30.697 B) params"

# A checkpoint directory: bytes from the tensor headers, towers and KV-shared K/V skipped.
inspect multimodal --model "$src/tests/fixtures/gemma4_e2b_tiny_multimodal"
expect multimodal "checkpoint                 1 safetensors file, 289 tensors, 3008776 B"
expect multimodal "in 718650 (0.001 B) params, as the config implies"
expect multimodal "KV-shared K/V (skipped)    82560 B"
expect multimodal "other tensors (skipped)    114 tensors, 51616 B"

expect_error "missing path" "no such file or directory" --model "$tmp/nope"
mkdir -p "$tmp/empty"
expect_error "directory without config" "has no config.json" --model "$tmp/empty"
printf '{"model_type": "llama"}' >"$tmp/llama.json"
expect_error "unsupported model_type" "model_type 'llama' is not supported" --model "$tmp/llama.json"
printf 'not json' >"$tmp/broken.json"
expect_error "broken JSON" "broken.json" --model "$tmp/broken.json"

finish
