#!/usr/bin/env bash
# Fetches MLPerf LoadGen's C++ source from its pinned PyPI source distribution into
# third_party/mlcommons_loadgen-<version>. Idempotent: quiet when the folder is already there.
# A download whose SHA-256 differs from the pin is refused, and nothing is unpacked.
set -euo pipefail
version=6.0.17
sha256=a2e85d09e3cc0c606f89bfe1fbf97537c8b5b238ae0afbd923ad9c710fcf2ca8
url=https://files.pythonhosted.org/packages/a5/bf/f48063c9cada7fab76044acfa7b424a9cec2a13878c64c8c4532bca4572b/mlcommons_loadgen-$version.tar.gz

dest=$(cd "$(dirname "$0")/.." && pwd)/third_party
src=$dest/mlcommons_loadgen-$version
[ -f "$src/loadgen.h" ] && exit 0

echo "fetch-loadgen: downloading mlcommons-loadgen $version from PyPI"
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 - "$url" "$sha256" "$tmp/loadgen.tar.gz" <<'PY'
import hashlib, sys, urllib.request
url, want, out = sys.argv[1:]
try:
    data = urllib.request.urlopen(url, timeout=120).read()
except Exception as e:  # one line, not a traceback: no network, proxy, certificate...
    sys.exit(f"fetch-loadgen: cannot download {url}: {e}")
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"fetch-loadgen: {url} has SHA-256 {got}, expected {want}; refusing it")
open(out, "wb").write(data)
PY
tar -xzf "$tmp/loadgen.tar.gz" -C "$tmp"
[ -f "$tmp/mlcommons_loadgen-$version/loadgen.h" ] || { echo "fetch-loadgen: the archive has no loadgen.h" >&2; exit 1; }
rm -rf "$src"
mv "$tmp/mlcommons_loadgen-$version" "$src"  # atomic: a half-unpacked tree is never at $src
