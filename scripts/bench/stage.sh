#!/usr/bin/env bash
# Benchmark: courier-stage.
#  1. A no-op cycle over 10 content types (dir sources, nothing new): wall time of
#     `courier-stage run`, median of BENCH_RUNS. Goal: under 100 ms. No peer (it is a fixed cost).
#  2. A 1 GiB download from a loopback HTTP server: `courier-stage fetch` (which also fsyncs the
#     file before renaming it into place) against `curl -o` (no fsync), alternating, medians.
#     Goal: at least 0.8x curl's throughput.
# Environment: COURIER_BIN (binaries; else built with --scratch-path .build-bench),
# BENCH_RUNS (default 5), BENCH_DOWNLOAD_MIB (default 1024), BENCH_RESULTS (append TSV lines).
set -euo pipefail
RUNS=${BENCH_RUNS:-5}
MIB=${BENCH_DOWNLOAD_MIB:-1024}
say() { echo "bench/stage: $*" >&2; }
die() { echo "bench/stage: error: $*" >&2; exit 1; }
command -v curl >/dev/null || die "curl is missing"
command -v python3 >/dev/null || die "python3 is missing"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -n ${COURIER_BIN:-} ]]; then BIN=$(cd "$COURIER_BIN" && pwd)
else (cd "$REPO" && swift build -c release --scratch-path .build-bench >&2) || die "build failed"; BIN=$REPO/.build-bench/release; fi
STAGE=$BIN/courier-stage
[[ -x $STAGE ]] || die "$STAGE not found"

W=$(mktemp -d /tmp/courier-bench-stage.XXXXXX)
SERVER_PID=""
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.4f}")' "$@"; }
now_ns() { date +%s%N; }

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
noop=()
for r in $(seq 1 "$RUNS"); do
  s=$(now_ns); "$STAGE" run --config "$W/stage.toml" >/dev/null || die "no-op run failed"; e=$(now_ns)
  noop+=("$(python3 -c "print(($e-$s)/1e6)")")
done
NOOP_MS=$(median "${noop[@]}")
say "no-op cycle over 10 types: ${noop[*]} ms (median $NOOP_MS ms)"

# --- 2. 1 GiB download vs curl ------------------------------------------------------------
mkdir -p "$W/www"
head -c $((MIB << 20)) /dev/urandom > "$W/www/big.bin" 2>/dev/null || die "cannot create the test file"
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
PORT=$(head -1 "$W/port"); URL="http://127.0.0.1:$PORT/big.bin"
ours=(); peer=()
for r in $(seq 1 "$RUNS"); do
  rm -f "$W/o.bin" "$W/c.bin"
  s=$(now_ns); "$STAGE" fetch "$URL" --out "$W/o.bin" --max-bytes 8G >/dev/null || die "fetch failed"; e=$(now_ns)
  ours+=("$(python3 -c "print(($e-$s)/1e9)")")
  [[ $(stat -c %s "$W/o.bin") -eq $((MIB << 20)) ]] || die "fetch wrote a wrong size"
  s=$(now_ns); curl -s -o "$W/c.bin" "$URL" || die "curl failed"; e=$(now_ns)
  peer+=("$(python3 -c "print(($e-$s)/1e9)")")
done
O=$(median "${ours[@]}"); P=$(median "${peer[@]}")
RATIO=$(python3 -c "print(f'{$P/$O:.2f}')")   # throughput ratio ours/curl = time curl / time ours
say "download ${MIB} MiB: ours ${ours[*]} s, curl ${peer[*]} s"

MET1=$(python3 -c "print('yes' if $NOOP_MS < 100 else 'no')")
MET2=$(python3 -c "print('yes' if $RATIO >= 0.8 else 'no')")
printf '\n%-36s %10s %10s %8s %10s %4s\n' figure ours peer ratio goal met
printf '%-36s %10s %10s %8s %10s %4s\n' "no-op cycle, 10 types (ms)" "$NOOP_MS" - - "<100 ms" "$MET1"
printf '%-36s %10s %10s %8s %10s %4s\n' "download ${MIB} MiB (s)" "$O" "$P" "${RATIO}x" ">=0.8x" "$MET2"
if [[ -n ${BENCH_RESULTS:-} ]]; then
  printf 'stage\tno-op cycle, 10 types (ms)\t%s\t-\t-\t<100 ms\t%s\n' "$NOOP_MS" "$MET1" >> "$BENCH_RESULTS"
  printf 'stage\tdownload %s MiB vs curl (s)\t%s\t%s\t%sx\t>=0.8x\t%s\n' "$MIB" "$O" "$P" "$RATIO" "$MET2" >> "$BENCH_RESULTS"
fi
