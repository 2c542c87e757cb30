#!/usr/bin/env bash
# Benchmark: courier-stage.
#  1. A no-op cycle over 10 content types (dir sources, nothing new): wall time of
#     `courier-stage run`, median of BENCH_RUNS. Goal: under 100 ms. No peer (it is a fixed cost).
#  2. A 1 GiB download from a loopback HTTP server: `courier-stage fetch` (which also fsyncs the
#     file before renaming it into place) against `curl -o` (no fsync), alternating, medians.
#     Goal: at least 0.8x curl's throughput.
#  3. `courier-stage build` of a 1 GiB mixed tree (scripts/bench/mixed_tree.py: half text that
#     zstd compresses ~2.3:1, half incompressible blobs) against `tar --zstd -cf` of the same tree
#     (GNU tar piping into the zstd program, as tar runs it), alternating, medians. Ours also
#     hashes every file twice (the manifest's scan, then again as it is written, to catch a file
#     changed meanwhile) and signs; the peer hashes nothing. Goal: >= 1.3x faster.
# Environment (defaults; under BENCH_QUICK=1 in brackets): COURIER_BIN (binaries; else a release
# build), BENCH_RUNS 5 [2], BENCH_DOWNLOAD_MIB 1024 [32], BENCH_BUILD_MIB 1024 [16],
# BENCH_FILES 64 [8]; COURIER_BENCH_TSV (lib.sh).
set -euo pipefail
BENCH=stage
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=$(bench_param BENCH_RUNS 5 2)
MIB=$(bench_param BENCH_DOWNLOAD_MIB 1024 32)
BUILD_MIB=$(bench_param BENCH_BUILD_MIB 1024 16)
NFILES=$(bench_param BENCH_FILES 64 8)
bench_need curl "apt-get install -y curl"
bench_need zstd "apt-get install -y zstd"
[[ $(tar --version 2>/dev/null | head -1) == *GNU* ]] || die "GNU tar is needed for the build peer (tar --zstd)"
bench_bin courier-stage
STAGE=$BIN/courier-stage

W=$(bench_workspace)
SERVER_PID=""
cleanup() { if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi; rm -rf -- "$W"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bench_space "$W" $(( MIB * 1024 * 3 + BUILD_MIB * 1024 * 3 + 65536 ))

# --- 1. no-op cycle over 10 types -----------------------------------------------------------
"$STAGE" keygen --out "$W/stage.key" >/dev/null
{
    echo 'outbox = "outbox"'; echo 'key = "stage.key"'; echo 'state_dir = "state"'
    for i in $(seq 1 10); do
        mkdir -p "$W/up/t$i/1"
        for f in $(seq 1 20); do head -c 20000 /dev/urandom > "$W/up/t$i/1/f$f.db"; done
        printf '[types.t%s]\nsource = "dir"\npath = "up/t%s"\n' "$i" "$i"
    done
} > "$W/stage.toml"
"$STAGE" run --config "$W/stage.toml" >/dev/null || die "first run failed"
bench_cmd "ours: courier-stage run --config stage.toml (10 dir types, nothing new)"
noop=()
for (( r = 1; r <= RUNS; r++ )); do
    bench_time "$STAGE" run --config "$W/stage.toml" >/dev/null || die "no-op run failed"
    noop+=("$(calc "$BENCH_ELAPSED * 1000")")
done
NOOP_MS=$(median -f .1f "${noop[@]}")
say "no-op cycle over 10 types: ${noop[*]} ms (median $NOOP_MS ms)"

# --- 2. download vs curl --------------------------------------------------------------------
mkdir -p "$W/www"
head -c $(( MIB << 20 )) /dev/urandom > "$W/www/big.bin" 2>/dev/null || die "cannot create the test file"
cat > "$W/serve.py" <<'PY'
import http.server, socketserver, sys, os
os.chdir(sys.argv[1])
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def copyfile(self, src, dst):
        # sendfile: the server must not be the bottleneck of either client.
        os.sendfile(dst.fileno(), src.fileno(), None, os.fstat(src.fileno()).st_size) if hasattr(dst, "fileno") else super().copyfile(src, dst)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$W/serve.py" "$W/www" > "$W/port" &
SERVER_PID=$!
for _ in $(seq 1 50); do [[ -s $W/port ]] && break; sleep 0.1; done
[[ -s $W/port ]] || die "the loopback HTTP server did not start"
PORT=$(head -1 "$W/port"); URL="http://127.0.0.1:$PORT/big.bin"
bench_cmd "ours: courier-stage fetch http://127.0.0.1:PORT/big.bin --out o.bin --max-bytes 8G"
bench_cmd "peer: curl -s -o c.bin http://127.0.0.1:PORT/big.bin"
ours=() peer=()
for (( r = 1; r <= RUNS; r++ )); do
    rm -f "$W/o.bin" "$W/c.bin"
    bench_time "$STAGE" fetch "$URL" --out "$W/o.bin" --max-bytes 8G >/dev/null || die "fetch failed"
    ours+=("$BENCH_ELAPSED")
    [[ $(stat -c %s "$W/o.bin") -eq $(( MIB << 20 )) ]] || die "fetch wrote a wrong size"
    bench_time curl -s -o "$W/c.bin" "$URL" || die "curl failed"
    peer+=("$BENCH_ELAPSED")
done
O=$(median -f .2f "${ours[@]}"); P=$(median -f .2f "${peer[@]}")
say "download ${MIB} MiB: ours ${ours[*]} s, curl ${peer[*]} s"
if (( MIB % 1024 == 0 )); then LABEL="$((MIB / 1024)) GiB"; else LABEL="$MIB MiB"; fi
kill "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
rm -rf -- "$W/www" "$W/o.bin" "$W/c.bin"

# --- 3. build vs tar --zstd -------------------------------------------------------------------
say "generating the ${BUILD_MIB} MiB mixed content tree ($NFILES files)"
python3 "$BENCH_LIB_DIR/mixed_tree.py" "$W/btree" "$BUILD_MIB" "$NFILES"
bench_cmd "ours: courier-stage build --tree TREE --type bench --revision N --key stage.key --out-dir out"
bench_cmd "peer: tar --zstd -cf tree.tar.zst -C TREE ."
cat -- "$W"/btree/*/* > /dev/null   # page cache warm for both
bours=() bpeer=() brss=()
for (( r = 0; r <= RUNS; r++ )); do   # run 0 warms up and is not counted
    rm -rf -- "$W/bout" "$W/tree.tar.zst"
    bench_time_rss "$STAGE" build --tree "$W/btree" --type bench --revision $(( r + 1 )) --key "$W/stage.key" \
        --out-dir "$W/bout" > "$W/build.log" 2>&1 || { cat "$W/build.log" >&2; die "courier-stage build failed"; }
    (( r > 0 )) && { bours+=("$BENCH_ELAPSED"); brss+=("$BENCH_RSS_KIB"); }
    bench_time tar --zstd -cf "$W/tree.tar.zst" -C "$W/btree" . || die "tar --zstd failed"
    (( r > 0 )) && bpeer+=("$BENCH_ELAPSED")
done
BO=$(median -f .2f "${bours[@]}"); BP=$(median -f .2f "${bpeer[@]}")
BSIZE=$(calc -f .1f "$(stat -c %s "$W/bout/bench_$(( RUNS + 1 )).cpkg") / 1048576")
PSIZE=$(calc -f .1f "$(stat -c %s "$W/tree.tar.zst") / 1048576")
say "build ${BUILD_MIB} MiB: ours ${bours[*]} s ($BSIZE MiB, RSS ${brss[*]} KiB), tar --zstd ${bpeer[*]} s ($PSIZE MiB)"
if (( BUILD_MIB % 1024 == 0 )); then BLABEL="$((BUILD_MIB / 1024)) GiB"; else BLABEL="$BUILD_MIB MiB"; fi

result "no-op courier-stage run over 10 content types" "$NOOP_MS" - ms - "< 100 ms" "$(met "$NOOP_MS < 100")"
# The ratio is of throughputs, ours / curl's = curl's time / ours.
result "$LABEL download from loopback, courier-stage fetch vs curl -o" "$O" "$P" s "$(ratio "$P" "$O")" \
    "≥ 0.8x" "$(met "$P / $O >= 0.8")"
result "build of a $BLABEL mixed tree, courier-stage build vs tar --zstd -cf" "$BO" "$BP" s "$(ratio "$BP" "$BO")" \
    "≥ 1.3x" "$(met "$BP / $BO >= 1.3")"
result "build of a $BLABEL mixed tree: package size (peer: tar.zst)" "$BSIZE" "$PSIZE" MiB - - -
result "build of a $BLABEL mixed tree: peak RSS of courier-stage build" "$(calc -f .1f "$(median "${brss[@]}") / 1024")" - MiB - - -
bench_done
