#!/usr/bin/env bash
# CPU prefill (512-token prompt) and batch-1 decode tok/s of sluice and of llama.cpp
# (llama-cpp-python from PyPI) on the same GGUF with the same thread count, side by side in
# one run. Usage: benchmarks/cpu_vs_llamacpp.sh [--threads N] [--model PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
model=models/gemma-3-270m-q4_k_m.gguf
while (($#)); do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
[ -x build/bin/sluice-model-bench ] || scripts/build.sh
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  echo "installing llama-cpp-python into .venv (builds llama.cpp from source; several minutes)" >&2
  .venv/bin/pip install -q numpy llama-cpp-python
fi
ours=$(build/bin/sluice-model-bench --model "$model" --threads "$threads")
theirs=$(.venv/bin/python benchmarks/llamacpp_bench.py --model "$model" --threads "$threads")
.venv/bin/python - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"model {a['model']}, {a['threads']} threads, prompt {a['prompt_tokens']}, decode {a['decode_tokens']}, median of {a['repeats']}")
print(f"{'':28}{'prefill tok/s':>15}{'decode tok/s':>15}")
for r in (a, b):
    print(f"{r['engine']:28}{r['prefill_tok_s']:>15.1f}{r['decode_tok_s']:>15.1f}")
print(f"{'ratio sluice / llama.cpp':28}{a['prefill_tok_s']/b['prefill_tok_s']:>15.2f}{a['decode_tok_s']/b['decode_tok_s']:>15.2f}")
PY
