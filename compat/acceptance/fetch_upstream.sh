#!/usr/bin/env bash
# Fetch upstream Patroni's source (for its behave acceptance suite) from
# Debian's source packages and verify it. Prints the path of the verified
# tarball on stdout. Nothing fetched here is ever committed.
#
#   compat/acceptance/fetch_upstream.sh [DEST_DIR]
#
# The machine's APT lists only binary packages: a deb-src entry for trixie
# is added beside the existing Debian entry, reusing that entry's URI.
set -euo pipefail

VERSION="4.0.7-3~deb13u1"
TARBALL="patroni_4.0.7.orig.tar.gz"
SHA256="2d53ecc208c99afff180954adb6f0f891e56da0fcd4e1ab84912daab5cf39a7e"
DEST="${1:-/var/cache/patroni-rs/upstream}"
LIST=/etc/apt/sources.list.d/patroni-rs-trixie-src.sources

verify() {
    [[ -f "$1" ]] && echo "$SHA256  $1" | sha256sum --check --status
}

mkdir -p "$DEST"
if verify "$DEST/$TARBALL"; then
    echo "$DEST/$TARBALL"
    exit 0
fi

if [[ ! -f "$LIST" ]]; then
    # The URI of the existing Debian (not security) entry, deb822 or one-line.
    uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && u && $0 !~ /security/ {print u; exit}' \
              /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [[ -z "$uri" ]]; then
        uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    fi
    [[ -n "$uri" ]] || { echo "fetch_upstream: no Debian APT source found to derive a deb-src entry from" >&2; exit 1; }
    cat > "$LIST" <<SRC
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq -o Dir::Etc::sourcelist="$LIST" -o Dir::Etc::sourceparts=- \
    -o APT::Get::List-Cleanup=0 >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get may report a failure on the .dsc even when the tarball arrived:
# the checksum is the judge.
(cd "$work" && apt-get source --download-only -qq "patroni=$VERSION" >"$work/apt.log" 2>&1) || true
if ! verify "$work/$TARBALL"; then
    cat "$work/apt.log" >&2
    echo "fetch_upstream: $TARBALL missing or its sha256 is not $SHA256; refusing to run" >&2
    exit 1
fi
mv "$work/$TARBALL" "$DEST/$TARBALL"
echo "$DEST/$TARBALL"
