#!/usr/bin/env bash
# Refreshes the embedded API reference bundle (Redoc's standalone ES module,
# MIT licence) from the npm registry. Usage: internal/httpapi/docs/update.sh [version]
set -euo pipefail
version="${1:-3.0.1}"
dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "redoc@${version}" >/dev/null && tar xzf "redoc-${version}.tgz")
cp "$tmp/package/bundles/redoc.standalone.js" "$dir/redoc.standalone.js"
echo "redoc ${version}" > "$dir/VERSION"
