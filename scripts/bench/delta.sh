#!/usr/bin/env bash
# Delta sizes (issue #13): the delta package courier-stage publishes — the whole signed file:
# manifest, signatures, tar headers, patches — against the smallest patch the strongest
# binary-diff tools make of the same change, per changed file: the best of
# `zstd -19 --long=31 --patch-from`, `xdelta3 -9` and `bsdiff`, summed over the changed files
# (the peers' figures carry no file list, signature or integrity data at all).
# Each delta is then applied as a client does (`courier-inboxd extract --base`) and the result
# compared byte for byte with the new tree (`diff -r`); a mismatch fails the benchmark.
#
# Cases, generated here (seeded, so every run measures the same bytes):
#   a  1,000 signature text files (ClamAV .ndb-like lines: a name and a hex pattern of 32–160
#      digits; 4–40 KB each); 10 of them (1 %) each get 3 lines replaced and 1 appended
#   b  one signature database of BENCH_DELTA_DB_MIB MiB (same line style): 0.5 % of its lines
#      replaced, 0.2 % of its bytes appended
#   c  one binary blob of BENCH_DELTA_BLOB_MIB MiB (random bytes): 1 % of its bytes changed in
#      scattered runs of 1–64 bytes
# Goal: ours ≤ 1.25× the smallest (ratio = peer / ours ≥ 0.80x).
#
# Environment (defaults; under BENCH_QUICK=1 in brackets): COURIER_BIN, BENCH_DELTA_DB_MIB 64 [8],
# BENCH_DELTA_BLOB_MIB 20 [4], BENCH_DELTA_FILES 1000 [200]; COURIER_BENCH_TSV (lib.sh).
# Sizes are deterministic: one run each (no medians needed); the build times are printed.
set -euo pipefail
BENCH=delta
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DB_MIB=$(bench_param BENCH_DELTA_DB_MIB 64 8)
BLOB_MIB=$(bench_param BENCH_DELTA_BLOB_MIB 20 4)
NFILES=$(bench_param BENCH_DELTA_FILES 1000 200)
bench_bin courier-stage courier-inboxd
bench_need zstd "apt-get install zstd"
bench_need xdelta3 "apt-get install xdelta3"
bench_need bsdiff "apt-get install bsdiff"
W=$(bench_workspace)
trap 'rm -rf -- "$W"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bench_space "$W" $(( (DB_MIB * 6 + BLOB_MIB * 6 + 200) * 1024 ))
"$BIN/courier-stage" keygen --out "$W/k" >/dev/null

say "generating the three cases"
python3 - "$W" "$NFILES" "$DB_MIB" "$BLOB_MIB" <<'PY'
import os, random, sys
w, nfiles, db_mib, blob_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(20261129)
def line():
    n = r.randrange(32, 161)
    return "%s.%s.%s-%07d-%d:%d:*:%0*x\n" % (r.choice(["Win", "Unix", "Doc", "Html", "Andr"]),
        r.choice(["Trojan", "Exploit", "Malware", "Downloader", "Phishing"]),
        r.choice(["Agent", "Emotet", "Qakbot", "Generic", "Mirai"]), r.randrange(10**7), r.randrange(3),
        r.randrange(11), n, r.getrandbits(4 * n))
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f: f.write(data)
# a: many text files, 1 % changed by a few lines
files = {}
for i in range(nfiles):
    files[f"sigs/d{i % 20:02d}/f{i:05d}.ndb"] = [line() for _ in range(r.randrange(40, 400))]
for p, ls in files.items(): write(f"{w}/a/v1/{p}", "".join(ls).encode())
for p in r.sample(sorted(files), max(1, nfiles // 100)):
    ls = files[p]
    for k in r.sample(range(len(ls)), 3): ls[k] = line()
    ls.append(line())
for p, ls in files.items(): write(f"{w}/a/v2/{p}", "".join(ls).encode())
# b: one large database
lines, size = [], 0
while size < db_mib << 20:
    l = line(); lines.append(l); size += len(l)
write(f"{w}/b/v1/daily.ndb", "".join(lines).encode())
for k in r.sample(range(len(lines)), len(lines) * 5 // 1000): lines[k] = line()
extra, es = [], 0
while es < size * 2 // 1000:
    l = line(); extra.append(l); es += len(l)
write(f"{w}/b/v2/daily.ndb", "".join(lines + extra).encode())
# c: a binary blob, 1 % of bytes changed in scattered runs
old = r.randbytes(blob_mib << 20)
new = bytearray(old); changed = 0
while changed < len(new) // 100:
    n = r.randint(1, 64); at = r.randrange(len(new) - n)
    new[at:at + n] = r.randbytes(n); changed += n
write(f"{w}/c/v1/main.bin", old); write(f"{w}/c/v2/main.bin", bytes(new))
PY

bench_cmd "ours: courier-stage build --tree v2 --delta-from v1.cpkg … (delta_format 2); size of the .cpkg; courier-inboxd extract --base v1-tree --into out delta.cpkg; diff -r out v2"
bench_cmd "peer: per changed file, min(zstd -19 --long=31 --patch-from=OLD NEW, xdelta3 -9 -e -s OLD NEW, bsdiff OLD NEW), summed"

declare -A label=([a]="${NFILES} text files, 1 % changed by a few lines"
                  [b]="one ${DB_MIB} MiB signature database, 0.5 % of lines changed, 0.2 % appended"
                  [c]="${BLOB_MIB} MiB binary, 1 % of bytes changed in scattered runs")
for case in a b c; do
    d=$W/$case
    "$BIN/courier-stage" build --tree "$d/v1" --type bench --revision 1 --key "$W/k" --out-dir "$d/out" >/dev/null \
        || die "case $case: full build failed"
    bench_time "$BIN/courier-stage" build --tree "$d/v2" --type bench --revision 2 --key "$W/k" --out-dir "$d/out" \
        --delta-from "$d/out/bench_1.cpkg" > "$d/build.log" || die "case $case: delta build failed: $(cat "$d/build.log")"
    built=$BENCH_ELAPSED
    ours=$(stat -c %s "$d/out/bench_2_from_1.cpkg")
    full=$(stat -c %s "$d/out/bench_1.cpkg")
    say "case $case: $(cat "$d/build.log") in ${built} s; delta ${ours} bytes (full ${full})"
    # Applied as a client does, checked byte for byte.
    "$BIN/courier-inboxd" extract --trust "$W/k.pub" --into "$d/client1" "$d/out/bench_1.cpkg" >/dev/null \
        || die "case $case: full extract failed"
    bench_time "$BIN/courier-inboxd" extract --trust "$W/k.pub" --base "$d/client1" --into "$d/client2" \
        "$d/out/bench_2_from_1.cpkg" >/dev/null || die "case $case: the delta did not apply"
    applied=$BENCH_ELAPSED
    diff -r "$d/client2" "$d/v2" >/dev/null || die "case $case: the applied delta differs from the new tree"
    # Peers, per changed file.
    peer=0
    while IFS= read -r -d '' f; do
        rel=${f#"$d/v2/"}
        old=$d/v1/$rel
        if [[ -f $old ]] && cmp -s "$old" "$f"; then continue; fi
        if [[ ! -f $old ]]; then
            z=$(zstd -19 -c -q "$f" | wc -c); peer=$(( peer + z )); continue
        fi
        zstd -q -f -19 --long=31 --patch-from="$old" "$f" -o "$d/p.zst" 2>/dev/null
        xdelta3 -9 -f -e -s "$old" "$f" "$d/p.xd"
        bsdiff "$old" "$f" "$d/p.bsd"
        z=$(stat -c %s "$d/p.zst"); x=$(stat -c %s "$d/p.xd"); b=$(stat -c %s "$d/p.bsd")
        best=$(( z < x ? z : x )); best=$(( best < b ? best : b ))
        say "case $case: $rel: zstd $z, xdelta3 $x, bsdiff $b"
        peer=$(( peer + best ))
    done < <(find "$d/v2" -type f -print0 | sort -z)
    result "delta size: ${label[$case]} (applied byte for byte in ${applied} s; built in ${built} s)" \
        "$ours" "$peer" bytes "$(ratio "$peer" "$ours")" "≥ 0.8x (ours ≤ 1.25× the smallest)" "$(met "$ours <= 1.25 * $peer")"
done
bench_done
