#!/usr/bin/env bash
# One integration test file under the project's venv: run_pytest.sh PYTHON FILE.
# A missing venv or pytest is a failure that says how to get them, never a silent pass.
set -uo pipefail
py=$1
file=$2
if [ ! -x "$py" ]; then
  echo "FAIL: $py not found: run scripts/install-deps.sh (it creates .venv with pytest and openai)"
  exit 1
fi
if ! "$py" -c "import pytest, openai" 2>/dev/null; then
  echo "FAIL: pytest or openai missing from $py: run scripts/install-deps.sh"
  exit 1
fi
# No .pytest_cache or __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1
# grpcio's fork handlers can abort the children that Popen forks to exec the daemon
# (conftest.py says how); the tests never use gRPC across a fork.
export GRPC_ENABLE_FORK_SUPPORT=false
exec "$py" -m pytest -x -q -p no:cacheprovider "$file"
