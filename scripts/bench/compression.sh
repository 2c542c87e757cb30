#!/usr/bin/env bash
# Benchmark behind the choice of the default compression (docs/FORMAT.md §1): the same content
# tree packaged with zstd (default level 3) and gzip (level 6), then verified; medians of
# BENCH_RUNS. The content is signature-database-like text (compressible, as real AV and IDS
# content is). Here "ours" is zstd and the "peer" gzip.
# Figures: verify time (ratio = how many times faster zstd inflates+verifies), package size
# (ratio = gzip size / zstd size), build time (information).
#
# Environment (defaults; under BENCH_QUICK=1 in brackets): COURIER_BIN (binaries; else a release
# build), BENCH_COMPRESSION_MIB 256 [16], BENCH_RUNS 5 [2]; COURIER_BENCH_TSV (lib.sh).
set -euo pipefail
BENCH=compression
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=$(bench_param BENCH_RUNS 5 2)
MIB=$(bench_param BENCH_COMPRESSION_MIB 256 16)
bench_bin courier-stage courier-deliver
W=$(bench_workspace)
trap 'rm -rf -- "$W"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bench_space "$W" $(( MIB * 1024 * 2 ))

say "generating ${MIB} MiB of signature-like text"
mkdir -p "$W/tree"
python3 - "$W/tree" "$MIB" <<'PY'
import hashlib, os, sys
root, mib = sys.argv[1], int(sys.argv[2])
per_file = min(16 << 20, mib << 20)
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
declare -A built=()
for c in zstd gzip; do
    bench_time "$BIN/courier-stage" build --tree "$W/tree" --type bench --revision 1 --key "$W/k" \
        --out-dir "$W/$c" --compression "$c" >/dev/null || die "build with $c failed"
    built[$c]=$BENCH_ELAPSED
    say "$c: built in ${BENCH_ELAPSED} s, $(stat -c %s "$W/$c/bench_1.cpkg") bytes"
done
bench_cmd "ours: courier-stage build --compression zstd …; courier-deliver verify --trust k.pub bench_1.cpkg"
bench_cmd "peer: courier-stage build --compression gzip …; courier-deliver verify --trust k.pub bench_1.cpkg"

cat "$W"/*/bench_1.cpkg > /dev/null
z=() g=()
for (( r = 1; r <= RUNS; r++ )); do
    for c in zstd gzip; do
        bench_time "$BIN/courier-deliver" verify --trust "$W/k.pub" "$W/$c/bench_1.cpkg" >/dev/null || die "verify $c failed"
        if [[ $c == zstd ]]; then z+=("$BENCH_ELAPSED"); else g+=("$BENCH_ELAPSED"); fi
    done
done
ZM=$(median -f .3f "${z[@]}"); GM=$(median -f .3f "${g[@]}")
ZS=$(stat -c %s "$W/zstd/bench_1.cpkg"); GS=$(stat -c %s "$W/gzip/bench_1.cpkg")
ZB=$(calc -f .2f "${built[zstd]}"); GB=$(calc -f .2f "${built[gzip]}")

result "verify $MIB MiB of signature-like text, zstd (ours) vs gzip" "$ZM" "$GM" s "$(ratio "$GM" "$ZM")" \
    "zstd faster" "$(met "$GM / $ZM >= 1")"
result "package size, zstd (ours) vs gzip" "$ZS" "$GS" bytes "$(ratio "$GS" "$ZS")" \
    "similar (≥ 0.9x)" "$(met "$GS / $ZS >= 0.9")"
result "build $MIB MiB package, zstd vs gzip (information, one run)" "$ZB" "$GB" s "$(ratio "$GB" "$ZB")" - -
bench_done
