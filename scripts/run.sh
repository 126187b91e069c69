#!/usr/bin/env bash
# The README's "run" command: installs what is missing, builds, fetches the default model and
# runs it. Arguments replace the default prompt's flags.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if (($#)); then
  exec build/bin/sluice generate "$@"
fi
exec build/bin/sluice generate --model default --prompt "The capital of France is" --max-tokens 32
