#!/usr/bin/env bash
# Runs every benchmark script under scripts/bench/ with the given binaries and prints one table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "${1:-.build/release}" && pwd)
export COURIER_BIN="$bin"
export BENCH_RESULTS=$(mktemp)
trap 'rm -f "$BENCH_RESULTS"' EXIT
for s in "$here"/*.sh; do
  [ "$(basename "$s")" = run-all.sh ] && continue
  echo "== $(basename "$s")"
  bash "$s"
done
echo
printf '%-10s %-38s %12s %12s %8s %10s %5s\n' bench figure ours peer ratio goal met
awk -F'\t' '{ printf "%-10s %-38s %12s %12s %8s %10s %5s\n", $1, $2, $3, $4, $5, $6, $7 }' "$BENCH_RESULTS"
