#!/usr/bin/env bash
# Benchmark behind the choice of the default compression (docs/FORMAT.md §1): the same content
# tree packaged with zstd (default level 3) and gzip (level 6), then verified; medians of
# BENCH_RUNS. The content is signature-database-like text (compressible, as real AV and IDS
# content is), BENCH_COMPRESSION_MIB MiB (default 256).
# Figures: verify time gzip vs zstd (ratio = how many times faster zstd inflates+verifies),
# package size gzip vs zstd (ratio = gzip size / zstd size).
set -euo pipefail
RUNS=${BENCH_RUNS:-5}
MIB=${BENCH_COMPRESSION_MIB:-256}
say() { echo "bench/compression: $*" >&2; }
die() { echo "bench/compression: error: $*" >&2; exit 1; }
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -n ${COURIER_BIN:-} ]]; then BIN=$(cd "$COURIER_BIN" && pwd)
else (cd "$REPO" && swift build -c release --scratch-path .build-bench >&2) || die "build failed"; BIN=$REPO/.build-bench/release; fi
W=$(mktemp -d /tmp/courier-bench-comp.XXXXXX)
trap 'rm -rf "$W"' EXIT

say "generating ${MIB} MiB of signature-like text"
mkdir -p "$W/tree"
python3 - "$W/tree" "$MIB" <<'PY'
import hashlib, os, sys
root, mib = sys.argv[1], int(sys.argv[2])
per_file = 16 << 20
n = max(1, (mib << 20) // per_file)
for f in range(n):
    with open(os.path.join(root, f"sigs{f:03d}.ndb"), "w") as out:
        written, i = 0, 0
        while written < per_file:
            h = hashlib.sha256(f"{f}-{i}".encode()).hexdigest()
            line = f"Courier.Test.Sig-{f}-{i}:0:*:{h}{h[:16]}\n"
            out.write(line); written += len(line); i += 1
PY
"$BIN/courier-stage" keygen --out "$W/k" >/dev/null
for c in zstd gzip; do
  s=$(date +%s%N)
  "$BIN/courier-stage" build --tree "$W/tree" --type bench --revision 1 --key "$W/k" --out-dir "$W/$c" --compression "$c" >/dev/null
  e=$(date +%s%N)
  say "$c: built in $(( (e - s) / 1000000 )) ms, $(stat -c %s "$W/$c/bench_1.cpkg") bytes"
done
median() { python3 -c 'import sys,statistics; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }
cat "$W"/*/bench_1.cpkg > /dev/null
z=(); g=()
for r in $(seq 1 "$RUNS"); do
  for c in zstd gzip; do
    s=$(date +%s%N)
    "$BIN/courier-deliver" verify --trust "$W/k.pub" "$W/$c/bench_1.cpkg" >/dev/null || die "verify $c failed"
    e=$(date +%s%N)
    v=$(python3 -c "print(($e-$s)/1e9)")
    if [[ $c == zstd ]]; then z+=("$v"); else g+=("$v"); fi
  done
done
ZM=$(median "${z[@]}"); GM=$(median "${g[@]}")
ZS=$(stat -c %s "$W/zstd/bench_1.cpkg"); GS=$(stat -c %s "$W/gzip/bench_1.cpkg")
TR=$(python3 -c "print(f'{$GM/$ZM:.2f}')"); SR=$(python3 -c "print(f'{$GS/$ZS:.2f}')")
MT=$(python3 -c "print('yes' if $GM/$ZM >= 1 else 'no')"); MS=$(python3 -c "print('yes' if $GS/$ZS >= 0.9 else 'no')")
printf '\n%-40s %12s %12s %8s %12s %4s\n' figure zstd gzip ratio goal met
printf '%-40s %12s %12s %8s %12s %4s\n' "verify ${MIB} MiB text (s)" "$ZM" "$GM" "${TR}x" "zstd faster" "$MT"
printf '%-40s %12s %12s %8s %12s %4s\n' "package size (bytes)" "$ZS" "$GS" "${SR}x" "similar" "$MS"
if [[ -n ${BENCH_RESULTS:-} ]]; then
  printf 'compression\tverify %s MiB text, zstd vs gzip (s)\t%s\t%s\t%sx\tzstd faster\t%s\n' "$MIB" "$ZM" "$GM" "$TR" "$MT" >> "$BENCH_RESULTS"
  printf 'compression\tpackage size, zstd vs gzip (bytes)\t%s\t%s\t%sx\tsimilar\t%s\n' "$ZS" "$GS" "$SR" "$MS" >> "$BENCH_RESULTS"
fi
