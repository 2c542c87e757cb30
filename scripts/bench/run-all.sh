#!/usr/bin/env bash
# Runs the benchmark scripts and prints ONE table of every figure: ours, the peer's from the same
# run, the ratio, the goal and whether it is met. Writes docs/BENCHMARKS.md after a complete run.
#
#     scripts/bench/run-all.sh [BIN_DIR]          (what `make bench` runs)
#
# Every scripts/bench/*.sh except lib.sh and this file is a benchmark: a new script is picked up
# by being there (it sources lib.sh and reports with `result`). Each runs in turn, in name order;
# one that fails (or runs past BENCH_TIMEOUT) does not stop the others, and its failure is a row
# of the table (met = FAILED), with its log kept. Rows it reported before failing are kept too.
#
# BIN_DIR: the Courier binaries (default: $COURIER_BIN, else .build/release).
# Environment:
#   BENCH="verify inboxd"  only these benchmarks (names without .sh, separated by spaces or commas;
#                          "micro" names the package-benchmark micro-benchmarks)
#   BENCH_QUICK=1          small sizes and few runs: proves the pipeline, figures not to quote
#   BENCH_MICRO=1          also run the in-process micro-benchmarks (Benchmarks/, package-benchmark:
#                          a long first build); scripts/bench/micro/run.sh
#   BENCH_DOC=FILE         where to write the page. Default: docs/BENCHMARKS.md after a complete
#                          run (every script, not quick); otherwise BENCH_OUT/BENCHMARKS.md only,
#                          so that a partial or quick run never replaces the recorded figures
#   BENCH_OUT=DIR          logs, raw results (results.tsv), machine facts; default a new
#                          ${TMPDIR:-/tmp}/courier-bench.XXXXXX, kept after the run
#   BENCH_TIMEOUT=SECONDS  limit per script (default 3600)
#   and each script's own variables (BENCH_RUNS, BENCH_VERIFY_MIB…: see its header).
# Exit status: 0, or 1 when a script failed (the table and the page are written all the same).
set -uo pipefail
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 2; }

bin_arg=${1:-${COURIER_BIN:-$repo/.build/release}}
[[ -d $bin_arg ]] || die "no binaries at $bin_arg (build them: make release, or pass BIN_DIR)"
COURIER_BIN=$(cd "$bin_arg" && pwd)
export COURIER_BIN
command -v python3 >/dev/null || die "python3 is missing"
timeout_s=${BENCH_TIMEOUT:-3600}
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive integer (got '$timeout_s')"

# --- which benchmarks ------------------------------------------------------------------
declare -A script_of=()
all=()
for s in "$here"/*.sh; do
    name=$(basename "$s" .sh)
    case $name in lib | run-all) continue ;; esac
    all+=("$name"); script_of[$name]=$s
done
script_of[micro]=$here/micro/run.sh

selected=()
subset=0
if [[ -n ${BENCH:-} ]]; then
    subset=1
    for name in ${BENCH//,/ }; do
        [[ -n ${script_of[$name]:-} ]] || die "no benchmark '$name' (known: ${all[*]} micro)"
        selected+=("$name")
    done
else
    selected=("${all[@]}")
    [[ ${BENCH_MICRO:-0} == 1 ]] && selected+=(micro)
fi
quick=0; [[ ${BENCH_QUICK:-0} == 1 ]] && quick=1

out=${BENCH_OUT:-}
if [[ -z $out ]]; then out=$(mktemp -d "${TMPDIR:-/tmp}/courier-bench.XXXXXX"); else mkdir -p "$out" || die "cannot create $out"; fi
out=$(cd "$out" && pwd)
rm -f "$out"/*.tsv "$out"/*.cmds
say "benchmarks: ${selected[*]}; binaries $COURIER_BIN; logs and results in $out"
python3 "$here/render.py" facts --workdir "${TMPDIR:-/tmp}" --repo "$repo" --bin "$COURIER_BIN" > "$out/facts.json" \
    || say "warning: could not read the machine facts"

# --- run them --------------------------------------------------------------------------
failed=()
for name in "${selected[@]}"; do
    s=${script_of[$name]}
    tsv=$out/$name.tsv log=$out/$name.log
    : > "$tsv"
    echo
    echo "== $name (${s#"$repo"/})"
    started=$SECONDS
    # Its own process group under `timeout`: a script past the limit gets SIGTERM (its traps
    # clean up what it started), then SIGKILL 30 s later.
    (cd "$repo" && COURIER_BENCH_TSV=$tsv COURIER_BENCH_CMDS=$out/$name.cmds \
        timeout -k 30 "$timeout_s" bash "$s") 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    took=$(( SECONDS - started ))
    if (( rc == 3 )) && [[ ${BENCH_STRICT:-0} == 1 ]]; then
        rc=0    # BENCH_STRICT's "a goal was not met": the rows say which
    fi
    if (( rc != 0 )); then
        if (( rc == 124 || rc == 137 )); then why="stopped after ${timeout_s} s (BENCH_TIMEOUT)"; else why="exit $rc"; fi
        last=$(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-160 | tr '\t' ' ')
        printf '%s\tscript failed, %s: %s (log: %s)\t-\t-\t-\t-\t-\tFAILED\n' "$name" "$why" "$last" "$log" >> "$tsv"
        failed+=("$name")
        say "$name FAILED ($why, after ${took} s); going on"
    elif [[ ! -s $tsv ]]; then
        printf '%s\tscript reported no result (log: %s)\t-\t-\t-\t-\t-\tFAILED\n' "$name" "$log" >> "$tsv"
        failed+=("$name")
    else
        say "$name done in ${took} s"
    fi
done

# --- one table, one page ---------------------------------------------------------------
results=$out/results.tsv
cmds=$out/commands.tsv
: > "$results"; : > "$cmds"
for name in "${selected[@]}"; do
    cat "$out/$name.tsv" >> "$results"
    [[ -f $out/$name.cmds ]] && cat "$out/$name.cmds" >> "$cmds"
done

echo
echo "== results ($( ((quick)) && echo "BENCH_QUICK=1: small sizes, not figures to quote; " )medians)"
python3 "$here/render.py" table --tsv "$results"

complete=$(( !subset && !quick ))
doc=${BENCH_DOC:-}
if [[ -z $doc ]]; then
    if (( complete )); then doc=$repo/docs/BENCHMARKS.md; else doc=$out/BENCHMARKS.md; fi
fi
invocation="make bench"
env_used=$(env | grep -E '^BENCH_[A-Z_]+=.' | grep -vE '^BENCH_(DOC|OUT)=' | sort | tr '\n' ' ')
[[ -n ${BENCH:-} ]] && env_used="BENCH=\"${BENCH}\" $env_used"
[[ -n $env_used ]] && invocation="make bench ${env_used% }"
notes=()
((quick)) && notes+=(--note "BENCH_QUICK=1: small sizes and few runs, to prove the pipeline. These figures are not to be quoted.")
((subset)) && notes+=(--note "A partial run: only ${selected[*]}.")
((${#failed[@]})) && notes+=(--note "Failed in this run: ${failed[*]} (see the rows marked FAILED).")
if python3 "$here/render.py" doc --tsv "$results" --facts "$out/facts.json" --cmds "$cmds" \
        --notes "$here/NOTES.md" --invocation "$invocation" "${notes[@]}" --out "$doc"; then
    echo
    say "wrote $doc"
    (( complete )) || [[ -n ${BENCH_DOC:-} ]] || say "(a partial or quick run: docs/BENCHMARKS.md left as it was; BENCH_DOC=docs/BENCHMARKS.md to replace it)"
else
    say "error: could not write $doc"
    failed+=(render)
fi
say "logs and raw results: $out"
(( ${#failed[@]} == 0 )) || { say "failed: ${failed[*]}"; exit 1; }
exit 0
