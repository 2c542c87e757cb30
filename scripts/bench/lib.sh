# shellcheck shell=bash
# scripts/bench/lib.sh — what every benchmark script shares. Not a benchmark itself: run-all.sh
# skips it. A script starts with
#
#     BENCH=verify                                     # the name in the table (default: file name)
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# and ends with `bench_done`. In between it reports each figure with `result`:
#
#     result NAME OURS PEER UNIT RATIO GOAL MET
#         NAME   what is measured ("verify 1GiB package, wall time")
#         OURS   our median; PEER the peer's median from the same run, or -
#         UNIT   s, ms, MiB, bytes, ticks…
#         RATIO  how many times better ours is (peer time / our time, peer size / our size), e.g.
#                "$(ratio "$peer" "$ours")" → 2.06x; - when there is no peer
#         GOAL   "≥ 2x", "< 32 MiB", … or -;  MET  yes | no | - (no goal)
#
# Each call appends one tab-separated line to $COURIER_BENCH_TSV (set by run-all.sh; the older
# name BENCH_RESULTS is honoured too):
#
#     bench<TAB>name<TAB>ours<TAB>peer<TAB>unit<TAB>ratio<TAB>goal<TAB>met
#
# Run alone (no COURIER_BENCH_TSV), a script prints its own rows as a table at `bench_done`.
# `bench_cmd TEXT` records the exact commands compared (docs/BENCHMARKS.md lists them).
#
# Also: say/die, bench_param (environment with a full and a BENCH_QUICK=1 default), bench_bin
# (COURIER_BIN or a release build), bench_need, bench_workspace, bench_rand, bench_space,
# bench_time / bench_time_rss (BENCH_ELAPSED seconds, BENCH_RSS_KIB), median, p99, calc, ratio,
# met. Everything that computes uses python3, as every script already needs it.
#
# Common environment: COURIER_BIN (binaries; else `swift build -c release --scratch-path
# .build-rel`), BENCH_QUICK=1 (small sizes, few runs: proves the pipeline, figures not to quote),
# BENCH_RUNS, BENCH_STRICT=1 (exit 3 when a goal is not met), TMPDIR (workspaces).

[[ -n ${BENCH:-} ]] || BENCH=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_REPO=$(cd "$BENCH_LIB_DIR/../.." && pwd)
BENCH_TSV=${COURIER_BENCH_TSV:-${BENCH_RESULTS:-}}
BENCH_ROWS=()          # this script's rows, for the table printed by bench_done
BENCH_UNMET=0
export LC_ALL=C

say() { echo "bench/$BENCH: [${SECONDS}s] $*" >&2; }
die() { echo "bench/$BENCH: error: $*" >&2; exit 1; }

[[ -n ${EPOCHREALTIME:-} ]] || die "bash >= 5 is needed (EPOCHREALTIME)"
command -v python3 >/dev/null || die "python3 is missing"

bench_quick() { [[ ${BENCH_QUICK:-0} == 1 ]]; }

# bench_param VAR FULL QUICK: prints $VAR if set, else QUICK under BENCH_QUICK=1, else FULL.
# Checks that the value is a positive integer.
bench_param() {
    local v=${!1:-}
    if [[ -z $v ]]; then if bench_quick; then v=$3; else v=$2; fi; fi
    [[ $v =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer (got '$v')"
    if [[ -n ${COURIER_BENCH_CMDS:-} ]]; then printf '%s\tsettings: %s=%s\n' "$BENCH" "$1" "$v" >> "$COURIER_BENCH_CMDS"; fi
    echo "$v"
}

# bench_need TOOL HINT: dies with HINT when TOOL is not on PATH.
bench_need() { command -v "$1" >/dev/null || die "$1 is missing: $2"; }

# bench_bin PROGRAM…: sets BIN to the directory of the Courier binaries and checks PROGRAMs there.
bench_bin() {
    local p
    if [[ -n ${COURIER_BIN:-} ]]; then
        BIN=$(cd "$COURIER_BIN" && pwd) || die "COURIER_BIN=$COURIER_BIN is not a directory"
        say "using binaries from $BIN (COURIER_BIN)"
    else
        say "building release binaries (swift build -c release --scratch-path .build-rel)"
        (cd "$BENCH_REPO" && swift build -c release --scratch-path .build-rel >&2) || die "swift build failed"
        BIN=$BENCH_REPO/.build-rel/release
    fi
    for p in "$@"; do [[ -x $BIN/$p ]] || die "$BIN/$p not found or not executable"; done
}

# bench_workspace: prints a new temporary directory for this script (the script removes it).
bench_workspace() { mktemp -d "${TMPDIR:-/tmp}/courier-bench-$BENCH.XXXXXX"; }

# bench_space DIR NEED_KIB: dies unless DIR's file system has NEED_KIB free.
bench_space() {
    local avail
    avail=$(df -Pk "$1" | awk 'NR == 2 { print $4 }')
    (( avail >= $2 )) || die "not enough space in $1: need ~$(( $2 / 1024 )) MiB, have $(( avail / 1024 )) MiB (set TMPDIR)"
}

# bench_rand BYTES: random bytes on stdout (openssl's DRBG is much faster than /dev/urandom).
if command -v openssl >/dev/null && openssl rand 16 >/dev/null 2>&1; then
    bench_rand() { openssl rand "$1"; }
else
    bench_rand() { head -c "$1" /dev/urandom; }
fi

# bench_now_ns: wall clock in nanoseconds, without forking.
bench_now_ns() { local t=$EPOCHREALTIME; echo "${t/./}000"; }

# bench_time CMD…: runs CMD, sets BENCH_ELAPSED to its wall time in seconds (µs resolution, no
# fork of its own) and returns CMD's status. Output goes wherever the caller sends it.
bench_time() {
    local t0=$EPOCHREALTIME t1 rc=0 us
    "$@" || rc=$?
    t1=$EPOCHREALTIME
    us=$(( 10#${t1/./} - 10#${t0/./} ))
    printf -v BENCH_ELAPSED '%d.%06d' $(( us / 1000000 )) $(( us % 1000000 ))
    return "$rc"
}

# bench_time_rss CMD…: as bench_time, under GNU time; also sets BENCH_RSS_KIB (peak RSS of the
# largest process of CMD). CMD's output goes to the caller's stdout/stderr.
bench_time_rss() {
    local tf rc=0
    [[ -x /usr/bin/time ]] || die "GNU time is missing at /usr/bin/time: apt-get install -y time (or 'make bootstrap')"
    tf=$(mktemp "${TMPDIR:-/tmp}/courier-bench-time.XXXXXX")
    bench_time /usr/bin/time -o "$tf" -f '%M' "$@" || rc=$?
    BENCH_RSS_KIB=$(tail -n 1 "$tf"); rm -f "$tf"
    [[ $BENCH_RSS_KIB =~ ^[0-9]+$ ]] || BENCH_RSS_KIB=0
    return "$rc"
}

# median [-f FORMAT] V…, p99 [-f FORMAT] V… (nearest rank): FORMAT as Python's format(), e.g. .2f
median() {
    local f=g; [[ ${1:-} == -f ]] && { f=$2; shift 2; }
    python3 -c 'import statistics, sys; print(format(statistics.median(float(x) for x in sys.argv[2:]), sys.argv[1]))' "$f" "$@"
}
p99() {
    local f=g; [[ ${1:-} == -f ]] && { f=$2; shift 2; }
    python3 -c 'import math, sys
v = sorted(float(x) for x in sys.argv[2:])
print(format(v[max(0, math.ceil(0.99 * len(v)) - 1)], sys.argv[1]))' "$f" "$@"
}

# calc [-f FORMAT] EXPR: evaluates an arithmetic expression of numbers, e.g. calc -f .2f "3.1 / 2".
calc() {
    local f=g; [[ ${1:-} == -f ]] && { f=$2; shift 2; }
    python3 -c 'import sys; print(format(eval(sys.argv[2], {"__builtins__": {}}, {}), sys.argv[1]))' "$f" "$1"
}

# ratio NUM DEN: "N.NNx" (NUM / DEN), or - when either is missing or DEN is 0.
ratio() {
    python3 -c 'import sys
try:
    n, d = float(sys.argv[1]), float(sys.argv[2])
    print(f"{n / d:.2f}x" if d != 0 else "-")
except ValueError:
    print("-")' "$1" "$2"
}

# met COND: yes when the arithmetic comparison COND holds (e.g. met "$r >= 2"), else no.
met() {
    python3 -c 'import sys; print("yes" if eval(sys.argv[1], {"__builtins__": {}}, {}) else "no")' "$1"
}

# result NAME OURS PEER UNIT RATIO GOAL MET: one figure (see the top of this file).
result() {
    (( $# == 7 )) || die "result: 7 fields expected (name ours peer unit ratio goal met), got $#: $*"
    local f row=$BENCH
    for f in "$@"; do
        f=${f//$'\t'/ }; f=${f//$'\n'/ }
        row+=$'\t'"${f:--}"
    done
    BENCH_ROWS+=("$row")
    [[ $7 == no ]] && BENCH_UNMET=$(( BENCH_UNMET + 1 ))
    if [[ -n $BENCH_TSV ]]; then printf '%s\n' "$row" >> "$BENCH_TSV"; fi
    say "result: $1: ours $2, peer $3 ($4), ratio $5, goal $6, met $7"
}

# bench_cmd TEXT: records a command of the comparison ("ours: courier-deliver verify …").
bench_cmd() {
    if [[ -n ${COURIER_BENCH_CMDS:-} ]]; then printf '%s\t%s\n' "$BENCH" "$*" >> "$COURIER_BENCH_CMDS"; fi
    say "$*"
}

# bench_done: prints this script's rows as a table when run alone; exits 3 under BENCH_STRICT=1
# when a goal was not met.
bench_done() {
    if [[ -z $BENCH_TSV && ${#BENCH_ROWS[@]} -gt 0 ]]; then
        echo
        printf '%s\n' "${BENCH_ROWS[@]}" | python3 "$BENCH_LIB_DIR/render.py" table --tsv -
    fi
    if [[ ${BENCH_STRICT:-0} == 1 && $BENCH_UNMET -gt 0 ]]; then
        say "$BENCH_UNMET goal(s) not met (BENCH_STRICT=1)"
        exit 3
    fi
}
