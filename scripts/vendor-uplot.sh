#!/usr/bin/env bash
# Vendor the uPlot chart library (MIT) into the gateway's static files, so the admin page never
# loads anything from a CDN. Re-run to reproduce or to upgrade (change VERSION and INTEGRITY).
#   scripts/vendor-uplot.sh
set -euo pipefail
VERSION=1.6.32
INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
DEST="$(cd "$(dirname "$0")/.." && pwd)/services/gateway/static/vendor/uplot"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack "uplot@$VERSION" --silent >/dev/null
got="sha512-$(openssl dgst -sha512 -binary "uplot-$VERSION.tgz" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || { echo "uplot-$VERSION.tgz: integrity $got, expected $INTEGRITY" >&2; exit 1; }
tar xzf "uplot-$VERSION.tgz"
mkdir -p "$DEST"
cp package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE "$DEST/"
echo "uPlot $VERSION" > "$DEST/VERSION"
echo "vendored uPlot $VERSION into $DEST"
