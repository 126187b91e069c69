#!/usr/bin/env bash
# The README's "run" command: installs what is missing, builds, fetches the default model and
# serves it: the OpenAI-compatible HTTP API on 127.0.0.1:8000 (Ctrl-C drains and stops).
# Arguments are passed to `sluice serve` (e.g. --port 9000, --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/bin/sluice serve --model default "$@"
