#!/usr/bin/env bash
# `sluice generate` end to end: good runs on the tiny fixture and the default model, and bad
# inputs that must each give one clear line on stderr and a non-zero exit code.
# Usage: generate_cli_test.sh SLUICE_BINARY SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
# shellcheck source=tests/cli/lib.sh
. "$src/tests/cli/lib.sh"

# expect_error NAME PATTERN ARGS...: exit code 2 and exactly one error line on stderr (info
# log lines aside), matching PATTERN.
expect_error() {
  local name=$1 pattern=$2
  shift 2
  "$bin" generate "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  grep -v '^\[sluice info\]' "$tmp/err" >"$tmp/err.lines"
  mv "$tmp/err.lines" "$tmp/err"
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$tmp/err"; then
    ok "$name"
  else
    bad "$name (rc=$rc, $lines stderr lines): $(head -c 300 "$tmp/err")"
  fi
}

tiny="$src/tests/fixtures/gemma3_tiny"
expect_error "missing model path" "no such file" --model "$tmp/nope.gguf" --prompt hi
mkdir -p "$tmp/empty"
expect_error "directory without config" "has no config.json" --model "$tmp/empty" --prompt-token-ids 2
mkdir -p "$tmp/llama"
cp "$tiny/model.safetensors" "$tmp/llama/"
sed 's/"gemma3_text"/"llama"/' "$tiny/config.json" >"$tmp/llama/config.json"
expect_error "unsupported model_type" "model_type 'llama' is not supported" --model "$tmp/llama" --prompt-token-ids 2
mkdir -p "$tmp/act"
cp "$tiny/model.safetensors" "$tmp/act/"
sed 's/"gelu_pytorch_tanh"/"silu"/' "$tiny/config.json" >"$tmp/act/config.json"
expect_error "unsupported activation" "hidden_activation" --model "$tmp/act" --prompt-token-ids 2
mkdir -p "$tmp/trunc"
cp "$tiny/config.json" "$tmp/trunc/"
head -c 5000 "$tiny/model.safetensors" >"$tmp/trunc/model.safetensors"
expect_error "truncated safetensors" "model.safetensors" --model "$tmp/trunc" --prompt-token-ids 2
head -c 4096 /dev/urandom >"$tmp/random.gguf"
expect_error "random bytes as GGUF" "random.gguf" --model "$tmp/random.gguf" --prompt hi
printf 'GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f\x00\x00\x00\x00\x00\x00\x00\x00' >"$tmp/huge.gguf"
expect_error "GGUF with an absurd tensor count" "huge.gguf" --model "$tmp/huge.gguf" --prompt hi
expect_error "token id out of range" "outside the vocabulary" --model "$tiny" --prompt-token-ids 2,512
expect_error "text prompt without tokenizer" "no tokenizer" --model "$tiny" --prompt hi
expect_error "no prompt" "prompt" --model "$tiny"

# A good run on the tiny fixture: greedy ids, deterministic.
a=$("$bin" generate --model "$tiny" --prompt-token-ids 2,17,300 --max-tokens 6 2>/dev/null)
b=$("$bin" generate --model "$tiny" --prompt-token-ids 2,17,300 --max-tokens 6 --output-token-ids 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$(echo "$a" | tr ',' '\n' | wc -l)" -eq 6 ]; then ok "tiny fixture greedy ids"; else bad "tiny fixture greedy ids: '$a' vs '$b'"; fi

# Every Gemma 4 fixture through `generate`: transformers' greedy ids (prompts.json "greedy").
g4_case() {  # fixture prompt-ids expected-ids
  local got
  got=$("$bin" generate --model "$src/tests/fixtures/$1" --prompt-token-ids "$2" --max-tokens 6 --output-token-ids 2>/dev/null)
  if [ "$got" = "$3" ]; then ok "$1 greedy ids"; else bad "$1 greedy ids: got '$got', want '$3'"; fi
}
g4_case gemma4_e2b_tiny 2,309,406,394,179,254 15,125,339,4,53,295
g4_case gemma4_31b_tiny 2,458,255,156,362,189 493,17,493,84,493,493
g4_case gemma4_moe_tiny 2,298,378,124,386,469 208,208,208,482,482,482
g4_case gemma4_e2b_realdims 2,346,18,403,197,367 22,134,277,137,469,339
g4_case gemma4_moe_realdims 2,242,364,274,57,391 51,425,425,425,293,425

model="$src/models/gemma-3-270m-q4_k_m.gguf"
if [ -f "$model" ]; then
  ids=$("$bin" generate --model "$model" --prompt "The capital of France is" --max-tokens 8 --output-token-ids 2>/dev/null)
  # transformers' greedy continuation (tests/fixtures/gemma3_270m/reference.json, prompt 0)
  if [ "$ids" = "506,5279,529,506,2891,529,7001,236761" ]; then ok "default model greedy ids"; else bad "default model greedy ids: $ids"; fi
  text=$("$bin" generate --model "$model" --prompt "The capital of France is" --max-tokens 8 2>/dev/null)
  if [ "$text" = " the capital of the country of France." ]; then ok "default model streamed text"; else bad "default model text: '$text'"; fi
  s1=$("$bin" generate --model "$model" --prompt "Once upon a time" --max-tokens 12 --temperature 0.9 --top-p 0.95 --seed 7 --output-token-ids 2>/dev/null)
  s2=$("$bin" generate --model "$model" --prompt "Once upon a time" --max-tokens 12 --temperature 0.9 --top-p 0.95 --seed 7 --output-token-ids 2>/dev/null)
  if [ -n "$s1" ] && [ "$s1" = "$s2" ]; then ok "seeded sampling reproducible"; else bad "seeded sampling: '$s1' vs '$s2'"; fi
  "$bin" generate --model "$model" --prompt-token-ids 2,818,5279 --max-tokens 2 --dump-logits "$tmp/logits.bin" >/dev/null 2>&1
  size=$(stat -c %s "$tmp/logits.bin" 2>/dev/null || echo 0)
  # 3 prompt positions + 1 more generated step, 262144 floats each
  if [ "$size" -eq $((4 * 262144 * 4)) ]; then ok "dump-logits size"; else bad "dump-logits size $size"; fi
  chat=$("$bin" generate --model "$model" --chat --prompt "Hello" --max-tokens 4 --output-token-ids 2>/dev/null)
  if [ -n "$chat" ]; then ok "chat prompt runs"; else bad "chat prompt"; fi
else
  echo "skip: default model not installed"
fi

finish
