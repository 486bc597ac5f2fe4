#!/usr/bin/env bash
# Node tooling of the repo, from committed lock files: tooling/ (buf, for `buf lint` / `buf breaking` on protos/)
# and clients/typescript/ (the TypeScript example client of docs/clients.md). `npm ci` runs only when a lock file
# changed since the last install, so a second run returns at once. Called by `make setup`; the tests that need
# these call it too (tests/node_tools.py).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm not found: install Node.js 20+ (buf lint and the TypeScript client test need it)" >&2
  exit 1
fi
for dir in tooling clients/typescript; do
  stamp="$dir/node_modules/.raven-lock-sha256"
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    continue
  fi
  echo "setup: npm ci in $dir"
  # No install scripts: nothing here needs one (buf's only links its platform binary, found without it).
  npm ci --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error
  echo "$want" > "$stamp"
done
