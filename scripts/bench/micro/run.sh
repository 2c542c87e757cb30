#!/usr/bin/env bash
# In-process micro-benchmarks of CourierCore with package-benchmark (ordo-one/benchmark 1.38.1):
# the package Benchmarks/ (its own Package.swift, depending on this one by path), built in its
# own scratch folder so that `make build` and `make test` never build it.
#
#     make microbench                 this script alone: builds, runs, prints the table
#     make bench BENCH_MICRO=1        the same rows in the `make bench` table (run-all.sh)
#
# Not a scripts/bench/*.sh (it lives in micro/): run-all.sh runs it only when asked, because its
# first build takes several minutes on 2 cores (package-benchmark, swift-crypto in release mode).
# The benchmarks are described in Benchmarks/Benchmarks/CourierMicro/CourierMicro.swift; each
# row is the median of package-benchmark's samples. No peer: these are in-process timings.
#
# Environment:
#   MICRO_SCRATCH   the build folder (default .build-bench in the repository)
#   MICRO_FORMAT    text: print package-benchmark's own tables instead of rows (all its metrics)
#   BENCH_QUICK=1   a few iterations only (a smoke test)
#   COURIER_BENCH_TSV (run-all.sh)
set -euo pipefail
BENCH=micro
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

SCRATCH=${MICRO_SCRATCH:-$BENCH_REPO/.build-bench}
bench_need swift "the Swift toolchain (6.1 or later)"
OUT=$(mktemp -d "${TMPDIR:-/tmp}/courier-microbench.XXXXXX")
trap 'rm -rf -- "$OUT"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_benchmarks() {  # run_benchmarks ARGS…: package-benchmark's command plugin, from the repository
    (cd "$BENCH_REPO" && swift package --package-path Benchmarks --scratch-path "$SCRATCH" --disable-sandbox \
        benchmark --no-progress "$@")
}

say "building (the first time: several minutes) and running Benchmarks/ in $SCRATCH"
if [[ ${MICRO_FORMAT:-} == text ]]; then
    run_benchmarks || die "package-benchmark failed (build or run)"
    exit 0
fi
bench_cmd "ours: swift package --package-path Benchmarks --scratch-path ${SCRATCH#"$BENCH_REPO"/} --disable-sandbox benchmark --format histogramPercentiles"
run_benchmarks --format histogramPercentiles --path "$OUT" >&2 || die "package-benchmark failed (build or run)"

# Current_run.<target>.<benchmark>.<metric>.histogram.percentiles.tsv: "Percentile<TAB><metric> (<unit>)"
# then one line per percentile 0…100. The 50th is the median.
python3 - "$OUT" > "$OUT/rows.tsv" <<'PY'
import glob, os, re, sys
what = {
    "sha256-64MiB": "SHA-256 of a 64 MiB buffer, 1 MiB updates (swift-crypto)",
    "sha256-64MiB-file": "SHA-256 of a 64 MiB file in the page cache (TreeScanner.hashFile)",
    "manifest-decode-10k": "Manifest.decode, 10,000 files (strict JSON + FORMAT.md §3 rules)",
}
time_to_ms = {"ns": 1e-6, "μs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
count_scale = {"#": 1, "K": 1e3, "M": 1e6, "G": 1e9}
rows = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.histogram.percentiles.tsv"))):
    parts = os.path.basename(path).split(".")
    bench, metric = parts[2], parts[3]
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    m = re.search(r"\(([^()]*)\)\s*\*?\s*$", lines[0])
    unit = m.group(1).strip() if m else ""
    p50 = next((float(l.split("\t")[1]) for l in lines[1:] if l.split("\t")[0] == "50"), None)
    if p50 is None:
        continue
    label = what.get(bench, bench)
    if metric == "wallClock" and unit in time_to_ms:
        rows.append((0, bench, f"{label}, wall time", f"{p50 * time_to_ms[unit]:.2f}", "ms"))
    elif metric == "mallocCountTotal":
        rows.append((1, bench, f"{label}, mallocs", f"{p50 * count_scale.get(unit, 1):.0f}", "count"))
order = {b: i for i, b in enumerate(what)}
for _, bench, name, value, unit in sorted(rows, key=lambda r: (order.get(r[1], 99), r[0])):
    print(f"{name}\t{value}\t{unit}")
PY
[[ -s $OUT/rows.tsv ]] || die "package-benchmark wrote no result in $OUT"
while IFS=$'\t' read -r name value unit; do
    result "$name" "$value" - "$unit" - - -
done < "$OUT/rows.tsv"
bench_done
