#!/usr/bin/env bash
# Fuzzes Courier's parsers with libFuzzer (issue #15): builds Fuzz/ (one driver for every target
# of CourierFuzzing, instrumented with -sanitize=fuzzer,address) in its own scratch folder, then
# runs each target in turn from its corpus in Fixtures/fuzz/<target>/.
#
#     make fuzz SECONDS=600                        600 s in total, split evenly over the targets
#     make fuzz TARGETS="manifest patch" SECONDS=120
#     make fuzz-seeds                              rewrite the generated seeds (Fixtures/fuzz/*/ok-*;
#                                                  through the test suite, no fuzz build)
#
# Environment: FUZZ_SECONDS (total budget, default 600), FUZZ_TARGETS (names; default all),
# FUZZ_SCRATCH (build folder, default .build-fuzz), FUZZ_OUT (work folder: grown corpora, logs,
# crashes; default a new ${TMPDIR:-/tmp}/courier-fuzz.XXXXXX, kept).
#
# A crash, leak, sanitizer report, timeout (10 s per input) or out-of-memory (2 GiB) stops that
# target; its input is copied to Fixtures/fuzz/<target>/crash-<sha1> so that the replay test
# (Tests/FuzzTests) fails until it is fixed, and this script exits 1 after the summary.
# Exit status: 0 when every target ran its share without a finding, 1 on a finding, 2 on a
# usage or build error.
set -uo pipefail
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
say() { echo "fuzz: $*" >&2; }
die() { echo "fuzz: error: $*" >&2; exit 2; }

total=${FUZZ_SECONDS:-600}
[[ $total =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer (got '$total')"
scratch=${FUZZ_SCRATCH:-$repo/.build-fuzz}
corpus_root=$repo/Fixtures/fuzz

say "building the fuzz driver (Fuzz/, -sanitize=fuzzer,address) in $scratch"
# Linked by lld (Fuzz/toolset.json): ld.gold stops with an internal error on this executable.
build=(--package-path "$repo/Fuzz" --scratch-path "$scratch" -c release -Xswiftc -sanitize=fuzzer,address
       --toolset "$repo/Fuzz/toolset.json")
swift build "${build[@]}" >"${TMPDIR:-/tmp}/courier-fuzz-build.log" 2>&1 ||
    { tail -30 "${TMPDIR:-/tmp}/courier-fuzz-build.log" >&2; die "the build failed (log: ${TMPDIR:-/tmp}/courier-fuzz-build.log)"; }
bin=$(swift build "${build[@]}" --show-bin-path)/CourierFuzz
[[ -x $bin ]] || die "no driver at $bin"

mapfile -t all < <(COURIER_FUZZ_LIST=1 "$bin" | cut -f1)
(( ${#all[@]} > 0 )) || die "the driver lists no targets"
if [[ -n ${FUZZ_TARGETS:-} ]]; then
    read -r -a targets <<<"${FUZZ_TARGETS//,/ }"
    for t in "${targets[@]}"; do printf '%s\n' "${all[@]}" | grep -qx -- "$t" || die "no fuzz target '$t' (have: ${all[*]})"; done
else
    targets=("${all[@]}")
fi
per=$(( total / ${#targets[@]} ))
(( per >= 1 )) || die "SECONDS=$total is less than one second per target (${#targets[@]} targets)"
out=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/courier-fuzz.XXXXXX")}
mkdir -p "$out"
say "${#targets[@]} target(s), $per s each ($total s in total); work in $out"

findings=0
printf '%-18s %8s %12s %10s %8s %7s  %s\n' target seconds executions exec/s corpus cover result > "$out/summary.txt"
for t in "${targets[@]}"; do
    work=$out/corpus/$t
    mkdir -p "$work" "$out/artifacts/$t"
    [[ -d $corpus_root/$t ]] && cp -n "$corpus_root/$t"/* "$work"/ 2>/dev/null
    start=$(date +%s)
    # The Swift runtime's own backtracer is off: on a crash its memory reader trips
    # AddressSanitizer and hides the real report; libFuzzer and ASan print the stack.
    COURIER_FUZZ_TARGET=$t SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "$bin" "$work" \
        -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$t/" >"$out/$t.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/$t.log" | tail -1)
    cover=$(grep -o 'cov: [0-9]*' "$out/$t.log" | tail -1 | cut -d' ' -f2)
    files=$(find "$work" -type f | wc -l)
    result=ok
    if (( rc != 0 )); then
        result="FINDING (exit $rc)"
        findings=$(( findings + 1 ))
        for a in "$out/artifacts/$t"/*; do
            [[ -f $a ]] || continue
            kind=$(basename "$a" | cut -d- -f1)
            dest=$corpus_root/$t/$kind-$(sha1sum "$a" | cut -c1-16)
            mkdir -p "$corpus_root/$t" && cp "$a" "$dest" && say "$t: kept $dest"
        done
        grep -m5 -E 'ERROR|Fatal error|fuzz property|SUMMARY' "$out/$t.log" >&2
    fi
    printf '%-18s %8s %12s %10s %8s %7s  %s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" "$files" "${cover:-?}" "$result" >> "$out/summary.txt"
    say "$t: $result, ${execs:-?} executions in $secs s"
done
cat "$out/summary.txt"
say "logs, grown corpora and artifacts in $out"
(( findings == 0 )) || { say "$findings target(s) found something: see above"; exit 1; }
