#!/usr/bin/env bash
# Build the pyo3 bridge (`patroni_rs`) with maturin and install it into the
# Python environment given by $PYTHON (default: the project venv).
# Usage: compat/build_bridge.sh [--debug]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
PYTHON="${PYTHON:-${PATRONI_RS_VENV:-/opt/patroni-rs/venv}/bin/python}"
profile=(--release)
[[ "${1:-}" == "--debug" ]] && profile=()
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$PYTHON" -m maturin build "${profile[@]}" -q -i "$PYTHON" \
    -m "$root/compat/bridge/Cargo.toml" -o "$out" >&2
"$PYTHON" -m pip install -q --force-reinstall --no-deps "$out"/patroni_rs-*.whl
