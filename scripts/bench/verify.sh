#!/usr/bin/env bash
# Benchmark: `courier-deliver verify` (signature, every payload entry's SHA-256, every limit)
# against peers that only decompress and hash the payload stream, in the same run, medians.
#
# Content is *mixed* (scripts/bench/mixed_tree.py): half signature-like text that zstd compresses
# ~2.3:1, half incompressible blobs, so that both decompression and hashing cost what they cost
# on real content.
#
# Goals (issue #13):
#   1. 1 GiB mixed package: >= 1.5x faster than `zstd -dc pkg | openssl dgst -sha256` (the
#      strongest common peer: two processes, so it too decompresses and hashes on two cores,
#      and OpenSSL hashes with the CPU's SHA instructions as swift-crypto does).
#      For information: `bsdtar -xOf pkg | sha256sum` (the plain peer; coreutils' SHA-256).
#   2. Peak RSS < 32 MiB and flat: measured at 64 MiB and at 1 GiB.
#   3. A package of 100,000 small files: < 32 MiB peak RSS, and no slower than
#      `bsdtar -xOf pkg | sha256sum`.
#
# Environment (defaults; under BENCH_QUICK=1 in brackets):
#   COURIER_BIN             directory holding courier-stage and courier-deliver (skips the build)
#   BENCH_VERIFY_MIB        size of the main content tree in MiB: 1024 [16]
#   BENCH_VERIFY_SMALL_MIB  the second package, for the RSS check: 64 [8]
#   BENCH_FILES             files in those trees (3 text : 1 blob): 64 [8]
#   BENCH_MANY_FILES        files in the many-files package (200 B - 1.8 KiB each): 100000 [2000]
#   BENCH_RUNS              timed runs of each command, alternating: 5 [2]
#   BENCH_STRICT            if 1, exit 3 when a goal is not met (default: report only)
#   TMPDIR                  where the temporary workspace goes (needs ~2.6x the tree sizes free)
#   COURIER_BENCH_TSV       set by run-all.sh: where the results go (scripts/bench/lib.sh)
set -euo pipefail
BENCH=verify
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MIB=$(bench_param BENCH_VERIFY_MIB 1024 16)
SMALL_MIB=$(bench_param BENCH_VERIFY_SMALL_MIB 64 8)
RUNS=$(bench_param BENCH_RUNS 5 2)
NFILES=$(bench_param BENCH_FILES 64 8)
MANY=$(bench_param BENCH_MANY_FILES 100000 2000)
STARTUP_RUNS=$(bench_param BENCH_STARTUP_RUNS 21 5)
GOAL_SPEEDUP=1.5
GOAL_PLAIN=2
GOAL_RSS_MIB=32

bench_need bsdtar "apt-get install -y libarchive-tools (or 'make bootstrap')"
bench_need sha256sum "coreutils"
bench_need zstd "apt-get install -y zstd"
bench_need openssl "apt-get install -y openssl"
[[ -x /usr/bin/time ]] || die "GNU time is missing at /usr/bin/time: apt-get install -y time (or 'make bootstrap')"
bench_bin courier-stage courier-deliver
STAGE=$BIN/courier-stage
DELIVER=$BIN/courier-deliver

W=$(bench_workspace)
cleanup() { rm -rf -- "$W"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bench_space "$W" $(( (MIB + SMALL_MIB) * 1024 * 26 / 10 + MANY * 8 ))

# many_tree DIR COUNT: COUNT small files of hex text (200 B to 1.8 KiB), 1,000 per directory.
many_tree() {
    python3 - "$1" "$2" <<'PY'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(count):
    d = os.path.join(root, "rules", "set-%03d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "rule-%06d.yar" % i), "wb") as f:
        f.write(rng.randbytes(rng.randrange(100, 900)).hex().encode())
PY
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

say "generating the ${MIB} MiB mixed content tree ($NFILES files)"
python3 "$BENCH_LIB_DIR/mixed_tree.py" "$W/tree" "$MIB" "$NFILES"
PKG=$(build_pkg "$W/tree" bench)
rm -rf -- "$W/tree"
PKG_MIB=$(calc -f .1f "$(stat -c %s "$PKG") / 1048576")
say "package: $PKG_MIB MiB"

say "generating the ${SMALL_MIB} MiB mixed content tree"
python3 "$BENCH_LIB_DIR/mixed_tree.py" "$W/tree-small" "$SMALL_MIB" "$NFILES" --seed=2
PKG_SMALL=$(build_pkg "$W/tree-small" benchsmall)
rm -rf -- "$W/tree-small"

say "generating a tree of $MANY small files"
many_tree "$W/tree-many" "$MANY"
PKG_MANY=$(build_pkg "$W/tree-many" benchmany)
rm -rf -- "$W/tree-many"

# --- measurement -------------------------------------------------------------------------
# Each sets BENCH_ELAPSED and BENCH_RSS_KIB (the largest process of the command). A failed
# run fails the bench (a wrong package or a broken peer must not produce a figure).
run_ours() {
    bench_time_rss "$DELIVER" verify --trust "$W/k.pub" "$1" > "$W/verify.log" 2>&1 \
        || { cat "$W/verify.log" >&2; die "courier-deliver verify $1 failed"; }
}
run_ssl() {
    bench_time_rss bash -c 'set -o pipefail; zstd -dcq "$1" | openssl dgst -sha256 >/dev/null' peer "$1" > "$W/peer.log" 2>&1 \
        || { cat "$W/peer.log" >&2; die "peer pipeline (zstd -dc | openssl dgst) failed"; }
}
run_plain() {
    bench_time_rss bash -c 'set -o pipefail; bsdtar -xOf "$1" | sha256sum >/dev/null' peer "$1" > "$W/peer.log" 2>&1 \
        || { cat "$W/peer.log" >&2; die "peer pipeline (bsdtar -xOf | sha256sum) failed"; }
}
bench_cmd "ours: courier-deliver verify --trust k.pub PKG"
bench_cmd "peer: zstd -dc PKG | openssl dgst -sha256"
bench_cmd "peer (plain): bsdtar -xOf PKG | sha256sum"

# measure PKG NAME: RUNS rounds of ours, zstd|openssl, bsdtar|sha256sum, alternating, after one
# warm-up round (page cache). Fills <NAME>_{ours,ssl,plain}_{wall,rss} arrays.
measure() {
    local pkg=$1 name=$2 r
    cat "$pkg" > /dev/null
    run_ours "$pkg"; run_ssl "$pkg"
    declare -g -a "${name}_ours_wall=()" "${name}_ours_rss=()" "${name}_ssl_wall=()" "${name}_ssl_rss=()" \
        "${name}_plain_wall=()" "${name}_plain_rss=()"
    for (( r = 1; r <= RUNS; r++ )); do
        run_ours "$pkg"; eval "${name}_ours_wall+=($BENCH_ELAPSED); ${name}_ours_rss+=($BENCH_RSS_KIB)"
        local ow=$BENCH_ELAPSED orss=$BENCH_RSS_KIB
        run_ssl "$pkg"; eval "${name}_ssl_wall+=($BENCH_ELAPSED); ${name}_ssl_rss+=($BENCH_RSS_KIB)"
        local sw=$BENCH_ELAPSED
        run_plain "$pkg"; eval "${name}_plain_wall+=($BENCH_ELAPSED); ${name}_plain_rss+=($BENCH_RSS_KIB)"
        say "$name run $r/$RUNS: ours $ow s $orss KiB, zstd|openssl $sw s, bsdtar|sha256sum $BENCH_ELAPSED s"
    done
}
measure "$PKG" big
measure "$PKG_SMALL" small
measure "$PKG_MANY" many

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
label() { if (( $1 % 1024 == 0 )); then echo "$(( $1 / 1024 )) GiB"; else echo "$1 MiB"; fi; }
LABEL=$(label "$MIB"); SLABEL=$(label "$SMALL_MIB")
med() { local -n a=$1; median -f "${2:-.2f}" "${a[@]}"; }
mib() { local -n a=$1; calc -f .1f "$(median "${a[@]}") / 1024"; }

echo
for n in big small many; do
    for k in ours ssl plain; do
        declare -n wa=${n}_${k}_wall ra=${n}_${k}_rss
        echo "  $n $k wall s: ${wa[*]}; RSS KiB: ${ra[*]}"
        unset -n wa ra
    done
done

ow=$(med big_ours_wall); sw=$(med big_ssl_wall); pw=$(med big_plain_wall)
result "verify $LABEL mixed package ($PKG_MIB MiB), vs zstd -dc | openssl dgst -sha256" "$ow" "$sw" s \
    "$(ratio "$sw" "$ow")" "≥ ${GOAL_SPEEDUP}x" "$(met "$sw / $ow >= $GOAL_SPEEDUP")"
result "verify $LABEL mixed package, vs bsdtar -xOf | sha256sum" "$ow" "$pw" s \
    "$(ratio "$pw" "$ow")" "≥ ${GOAL_PLAIN}x" "$(met "$pw / $ow >= $GOAL_PLAIN")"
orss=$(mib big_ours_rss); srss=$(mib small_ours_rss)
result "verify peak RSS, $LABEL package (peer zstd|openssl, largest process)" "$orss" "$(mib big_ssl_rss)" MiB - \
    "< $GOAL_RSS_MIB MiB" "$(met "$orss < $GOAL_RSS_MIB")"
result "verify peak RSS, $SLABEL package (flat: same as at $LABEL)" "$srss" "$(mib small_ssl_rss)" MiB - \
    "< $GOAL_RSS_MIB MiB" "$(met "$srss < $GOAL_RSS_MIB")"
sow=$(med small_ours_wall); ssw=$(med small_ssl_wall)
result "verify $SLABEL mixed package, vs zstd -dc | openssl dgst -sha256 (information)" "$sow" "$ssw" s \
    "$(ratio "$ssw" "$sow")" - -
mow=$(med many_ours_wall); mpw=$(med many_plain_wall); mrss=$(mib many_ours_rss)
result "verify $MANY-file package, vs bsdtar -xOf | sha256sum" "$mow" "$mpw" s \
    "$(ratio "$mpw" "$mow")" "≥ 1x" "$(met "$mpw / $mow >= 1")"
result "verify $MANY-file package, vs zstd -dc | openssl dgst -sha256 (information)" "$mow" "$(med many_ssl_wall)" s \
    "$(ratio "$(med many_ssl_wall)" "$mow")" - -
result "verify peak RSS, $MANY-file package (peer bsdtar|sha256sum)" "$mrss" "$(mib many_plain_rss)" MiB - \
    "< $GOAL_RSS_MIB MiB" "$(met "$mrss < $GOAL_RSS_MIB")"
result "start-up: courier-deliver --version" "$(median -f .1f "${ver_ms[@]}")" - ms - - -
result "start-up: courier-deliver verify of an 80 KiB package" "$(median -f .1f "${tiny_ms[@]}")" - ms - - -
bench_done
