#!/usr/bin/env bash
# Benchmark: `courier-deliver verify` of a large full package against a peer that does the
# least a verifier can do (decompress and hash the whole payload stream:
# `bsdtar -xOf pkg | sha256sum`).
#
# Goals: verify is >= 2x faster than the peer, and its peak RSS stays < 32 MiB whatever the
# package size (checked with the main package and with a smaller one).
# For information: the same package against `bsdtar -xOf | openssl dgst -sha256` (a peer that
# hashes with the CPU's SHA instructions, as swift-crypto does), and the start-up time of
# courier-deliver (`--version`, and verify of a small package).
#
# Environment (defaults; under BENCH_QUICK=1 in brackets):
#   COURIER_BIN             directory holding courier-stage and courier-deliver (skips the build)
#   BENCH_VERIFY_MIB        size of the main content tree in MiB: 1024 [16]
#   BENCH_VERIFY_SMALL_MIB  the second package, for the RSS check: 256 [8]
#   BENCH_RUNS              timed runs of each command, alternating: 5 [2]
#   BENCH_FILES             number of files in the content tree: 64 [8]
#   BENCH_STRICT            if 1, exit 3 when a goal is not met (default: report only)
#   TMPDIR                  where the temporary workspace goes (needs ~2.6x the tree sizes free)
#   COURIER_BENCH_TSV       set by run-all.sh: where the results go (scripts/bench/lib.sh)
set -euo pipefail
BENCH=verify
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MIB=$(bench_param BENCH_VERIFY_MIB 1024 16)
SMALL_MIB=$(bench_param BENCH_VERIFY_SMALL_MIB 256 8)
RUNS=$(bench_param BENCH_RUNS 5 2)
NFILES=$(bench_param BENCH_FILES 64 8)
STARTUP_RUNS=$(bench_param BENCH_STARTUP_RUNS 21 5)
GOAL_SPEEDUP=2
GOAL_RSS_MIB=32

bench_need bsdtar "apt-get install -y libarchive-tools (or 'make bootstrap')"
bench_need sha256sum "coreutils"
[[ -x /usr/bin/time ]] || die "GNU time is missing at /usr/bin/time: apt-get install -y time (or 'make bootstrap')"
bench_bin courier-stage courier-deliver
STAGE=$BIN/courier-stage
DELIVER=$BIN/courier-deliver

W=$(bench_workspace)
cleanup() { rm -rf -- "$W"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bench_space "$W" $(( (MIB + SMALL_MIB) * 1024 * 26 / 10 ))

# make_tree DIR MIB: MIB MiB of incompressible data over NFILES files (every file distinct).
make_tree() {
    local dir=$1 total i
    total=$(( $2 * 1024 * 1024 ))
    mkdir -p "$dir/sub"
    for (( i = 0; i < NFILES; i++ )); do
        # Spread the remainder so the sizes add up exactly.
        bench_rand $(( total / NFILES + (i < total % NFILES ? 1 : 0) )) > "$dir/sub/part-$(printf '%03d' "$i").bin"
    done
}

# build_pkg TREE TYPE: signed full zstd package, revision 1; prints its path.
build_pkg() {
    local tree=$1 type=$2 out=$W/out
    "$STAGE" build --tree "$tree" --type "$type" --revision 1 --key "$W/k" --out-dir "$out" \
        > "$W/build-$type.log" 2>&1 || { cat "$W/build-$type.log" >&2; die "courier-stage build ($type) failed"; }
    [[ -f $out/${type}_1.cpkg ]] || die "courier-stage build did not write $out/${type}_1.cpkg"
    echo "$out/${type}_1.cpkg"
}

say "workspace $W"
"$STAGE" keygen --out "$W/k" > "$W/keygen.log" 2>&1 \
    || { cat "$W/keygen.log" >&2; die "courier-stage keygen failed"; }

say "generating ${MIB} MiB content tree ($NFILES files)"
make_tree "$W/tree" "$MIB"
say "building package bench_1.cpkg"
bench_time build_pkg "$W/tree" bench > "$W/pkg.path"
PKG=$(< "$W/pkg.path")
rm -rf -- "$W/tree"
PKG_MIB=$(calc -f .1f "$(stat -c %s "$PKG") / 1048576")
say "package: $PKG_MIB MiB, built in $BENCH_ELAPSED s"

say "generating ${SMALL_MIB} MiB content tree for the RSS check"
make_tree "$W/tree-small" "$SMALL_MIB"
PKG_SMALL=$(build_pkg "$W/tree-small" benchsmall)
rm -rf -- "$W/tree-small"

# --- measurement -------------------------------------------------------------------------
# run_ours PKG / run_peer PKG: one timed run; set BENCH_ELAPSED and BENCH_RSS_KIB. A failed
# run fails the bench (a wrong package or a broken peer must not produce a figure).
run_ours() {
    bench_time_rss "$DELIVER" verify --trust "$W/k.pub" "$1" > "$W/verify.log" 2>&1 \
        || { cat "$W/verify.log" >&2; die "courier-deliver verify $1 failed"; }
}
run_peer() {
    bench_time_rss bash -c 'set -o pipefail; bsdtar -xOf "$1" | sha256sum' peer "$1" > "$W/peer.log" 2>&1 \
        || { cat "$W/peer.log" >&2; die "peer pipeline (bsdtar -xOf | sha256sum) failed"; }
}
bench_cmd "ours: courier-deliver verify --trust k.pub bench_1.cpkg"
bench_cmd "peer: bsdtar -xOf bench_1.cpkg | sha256sum"

# Warm the page cache so that neither side pays for the first read from disk.
cat "$PKG" "$PKG_SMALL" > /dev/null
run_ours "$PKG"; run_peer "$PKG"

ours_wall=() ours_rss=() peer_wall=() peer_rss=()
for (( r = 1; r <= RUNS; r++ )); do
    run_ours "$PKG"; ours_wall+=("$BENCH_ELAPSED"); ours_rss+=("$BENCH_RSS_KIB")
    run_peer "$PKG"; peer_wall+=("$BENCH_ELAPSED"); peer_rss+=("$BENCH_RSS_KIB")
    say "run $r/$RUNS: ours ${ours_wall[-1]} s ${ours_rss[-1]} KiB, peer ${peer_wall[-1]} s ${peer_rss[-1]} KiB"
done

# A second, stronger peer for honesty: coreutils sha256sum here does not use the CPU's SHA
# instructions, OpenSSL does. The goal is stated against the first peer; this row shows how much
# of the lead is hashing speed rather than anything verify does better.
ssl_wall=()
if command -v openssl >/dev/null; then
    bench_cmd "peer (information): bsdtar -xOf bench_1.cpkg | openssl dgst -sha256"
    for (( r = 1; r <= RUNS; r++ )); do
        bench_time bash -c 'set -o pipefail; bsdtar -xOf "$1" | openssl dgst -sha256 >/dev/null' peer "$PKG" \
            || die "peer pipeline (bsdtar -xOf | openssl dgst) failed"
        ssl_wall+=("$BENCH_ELAPSED")
    done
fi

small_rss=()
for (( r = 1; r <= RUNS; r++ )); do run_ours "$PKG_SMALL"; small_rss+=("$BENCH_RSS_KIB"); done

# Start-up: what a caller such as Ansible's `validate:` pays per package for a small one.
mkdir -p "$W/tiny"
bench_rand 81920 > "$W/tiny/defs.bin"
PKG_TINY=$(build_pkg "$W/tiny" tiny)
bench_cmd "start-up: courier-deliver --version; courier-deliver verify --trust k.pub tiny_1.cpkg (80 KiB)"
ver_ms=() tiny_ms=()
for (( r = 1; r <= STARTUP_RUNS; r++ )); do
    bench_time "$DELIVER" --version > /dev/null 2>&1 || die "courier-deliver --version failed"
    ver_ms+=("$(calc "$BENCH_ELAPSED * 1000")")
    bench_time "$DELIVER" verify --trust "$W/k.pub" "$PKG_TINY" > /dev/null 2>&1 || die "verify of the small package failed"
    tiny_ms+=("$(calc "$BENCH_ELAPSED * 1000")")
done

# --- report ------------------------------------------------------------------------------
if (( MIB % 1024 == 0 )); then LABEL="$((MIB / 1024)) GiB"; else LABEL="$MIB MiB"; fi
if (( SMALL_MIB % 1024 == 0 )); then SLABEL="$((SMALL_MIB / 1024)) GiB"; else SLABEL="$SMALL_MIB MiB"; fi
ow=$(median -f .2f "${ours_wall[@]}"); pw=$(median -f .2f "${peer_wall[@]}")
x=$(ratio "$pw" "$ow")
orss=$(calc -f .1f "$(median "${ours_rss[@]}") / 1024"); prss=$(calc -f .1f "$(median "${peer_rss[@]}") / 1024")
srss=$(calc -f .1f "$(median "${small_rss[@]}") / 1024")

echo
echo "verify benchmark: ${MIB} MiB tree, $NFILES files, package $PKG_MIB MiB (zstd), $RUNS runs each, medians"
echo "  ours wall s: ${ours_wall[*]}"
echo "  peer wall s: ${peer_wall[*]}"
echo "  ours RSS KiB: ${ours_rss[*]}; ${SMALL_MIB} MiB package: ${small_rss[*]}"

result "verify $LABEL package, wall time (peer: bsdtar -xOf | sha256sum)" "$ow" "$pw" s "$x" \
    "≥ ${GOAL_SPEEDUP}x" "$(met "$pw / $ow >= $GOAL_SPEEDUP")"
result "verify peak RSS, $LABEL package (peer's, for reference)" "$orss" "$prss" MiB - \
    "< $GOAL_RSS_MIB MiB" "$(met "$orss < $GOAL_RSS_MIB")"
result "verify peak RSS, $SLABEL package (RSS does not grow with size)" "$srss" - MiB - \
    "< $GOAL_RSS_MIB MiB" "$(met "$srss < $GOAL_RSS_MIB")"
if (( ${#ssl_wall[@]} > 0 )); then
    sw=$(median -f .2f "${ssl_wall[@]}")
    result "verify $LABEL package vs bsdtar -xOf | openssl dgst -sha256 (information)" "$ow" "$sw" s \
        "$(ratio "$sw" "$ow")" - -
fi
result "start-up: courier-deliver --version" "$(median -f .1f "${ver_ms[@]}")" - ms - - -
result "start-up: courier-deliver verify of an 80 KiB package" "$(median -f .1f "${tiny_ms[@]}")" - ms - - -
bench_done
