# Sourced by the scripts in .ci/: shared locations, kept outside the clone so
# repeated runs on one machine reuse the cargo build cache.
VENV="${PATRONI_RS_VENV:-/opt/patroni-rs/venv}"
export PATRONI_RS_VENV="$VENV"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/patroni-rs/target}"
export PATH="$VENV/bin:/usr/lib/postgresql/15/bin:$PATH"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATRONI_RS_SHARED="${PATRONI_RS_SHARED:-$(dirname "$ROOT")/shared}"
