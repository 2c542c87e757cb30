#!/usr/bin/env bash
# Benchmark: courier-tuf against python-tuf's ngclient (the reference TUF client), on one TUF
# repository made here by python-tuf (scripts/bench/tuf/make_repo.py) and served on 127.0.0.1
# by nginx, the same server for both.
#
# Both clients are driven through the TUF conformance suite's client-under-test CLI: ours is
# courier-tuf, the peer Tests/Support/pytufclient.py (python-tuf 7's Updater behind the
# same protocol). Figures, medians of BENCH_RUNS runs in alternating order, each in a fresh
# metadata and target directory:
#   first   init + refresh + download of all BENCH_TUF_TARGETS targets (one process each);
#   again   a refresh when nothing changed (metadata already trusted and current).
# Goal: first ≥ 5× python-tuf.
#
# Environment (defaults; under BENCH_QUICK=1 in brackets): BENCH_TUF_TARGETS 500 [50],
# BENCH_TUF_SIZE bytes per target 4096 [1024], BENCH_RUNS 5 [2], BENCH_TUF_TMPDIR where the
# repository, metadata and targets live (/dev/shm; see below); COURIER_BIN (lib.sh).
set -euo pipefail
BENCH=tuf
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=$(bench_param BENCH_RUNS 5 2)
N=$(bench_param BENCH_TUF_TARGETS 500 50)
SIZE=$(bench_param BENCH_TUF_SIZE 4096 1024)
bench_bin courier-tuf
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REF=$HERE/../../Tests/Support/pytufclient.py
[[ -f $REF ]] || die "the reference client is missing: $REF"
bench_need nginx "apt-get install -y nginx-light"
bench_need curl "apt-get install -y curl"
python3 -c 'import tuf' 2>/dev/null || die "python-tuf is missing: pip install tuf==7.0.1 (scripts/bootstrap.sh installs it)"

# The workspace is on tmpfs (/dev/shm) unless BENCH_TUF_TMPDIR names another place. On this
# machine's ext4 (no journal) a file created within 60 s of deletions in its block group makes
# the allocator step over every such inode (kernel recently_deleted(); perf put 45 % of a
# download there): each run would pay for the files the one before it removed — python-tuf
# alone creates and deletes a temporary per target. On tmpfs the figure is the clients'.
TUF_TMP=${BENCH_TUF_TMPDIR:-/dev/shm}
[[ -d $TUF_TMP && -w $TUF_TMP ]] || TUF_TMP=${TMPDIR:-/tmp}
W=$(TMPDIR=$TUF_TMP bench_workspace)
export TMPDIR=$W   # python-tuf's temporary files too
SERVER_PID=
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null; rm -rf -- "$W"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "a TUF repository of $N targets of $SIZE bytes (python-tuf)"
python3 "$HERE/tuf/make_repo.py" "$W/repo" "$N" "$SIZE"
# The server: nginx, as a vendor's mirror would be (a Python server would bound both clients
# at its own ~2 ms per request). Its own configuration, on 127.0.0.1 only, on a free port.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$W/nginx"
chmod a+rx "$W"   # nginx's workers run as www-data; the workspace is mktemp's 0700
cat > "$W/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    fastcgi_temp_path $W/nginx/fastcgi;
    uwsgi_temp_path $W/nginx/uwsgi;
    scgi_temp_path $W/nginx/scgi;
    server {
        listen 127.0.0.1:$PORT;
        root $W/repo;
        sendfile on;
        keepalive_requests 10000;
    }
}
NGINX
nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/metadata/root.json" && break; sleep 0.05; done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/metadata/root.json" || die "nginx did not start (see $W/nginx/error.log)"
URL=http://127.0.0.1:$PORT
NAMES=()
for (( i = 0; i < N; i++ )); do printf -v n 'daily-%04d.ndb' "$i"; NAMES+=(--target-name "$n"); done

ours() { "$BIN/courier-tuf" "$@"; }
peer() { python3 "$REF" "$@"; }
# first TOOL DIR: init, refresh and download everything into DIR.
first() {
    local tool=$1 d=$2
    mkdir -p "$d/meta" "$d/targets"
    "$tool" --metadata-dir "$d/meta" init "$W/repo/root.json" >/dev/null 2>&1 &&
    "$tool" --metadata-dir "$d/meta" --metadata-url "$URL/metadata" refresh >/dev/null 2>&1 &&
    "$tool" --metadata-dir "$d/meta" --metadata-url "$URL/metadata" "${NAMES[@]}" \
        --target-base-url "$URL/targets/" --target-dir "$d/targets" download >/dev/null 2>&1
}
again() { "$1" --metadata-dir "$2/meta" --metadata-url "$URL/metadata" refresh >/dev/null 2>&1; }

bench_cmd "ours: courier-tuf --metadata-dir M init root.json; … refresh; … --target-name daily-0000.ndb … (×$N) --target-base-url U --target-dir T download"
bench_cmd "peer: python3 Tests/Support/pytufclient.py (python-tuf $(python3 -c 'import tuf; print(tuf.__version__)') ngclient), the same three commands"
bench_cmd "again: … refresh, with the metadata already current (both)"

declare -A T
for (( r = 1; r <= RUNS; r++ )); do
    order=(ours peer); (( r % 2 == 0 )) && order=(peer ours)
    for tool in "${order[@]}"; do
        d=$W/run-$tool-$r
        bench_time first "$tool" "$d" || die "$tool: init/refresh/download failed (run it by hand: $d)"
        T[first,$tool]+="$BENCH_ELAPSED "
        t_first=$BENCH_ELAPSED
        got=$(find "$d/targets" -type f | wc -l)
        (( got == N )) || die "$tool downloaded $got of $N targets"
        if (( r == 1 )); then
            for f in "$W"/repo/targets/daily-0000.ndb "$W/repo/targets/$(printf 'daily-%04d.ndb' $(( N - 1 )))"; do
                find "$d/targets" -type f -name "*$(basename "$f")" -exec cmp -s "$f" {} \; -print | grep -q . ||
                    die "$tool: $(basename "$f") missing or different"
            done
        fi
        bench_time again "$tool" "$d" || die "$tool: the no-change refresh failed"
        T[again,$tool]+="$BENCH_ELAPSED "
        say "run $r $tool: first $t_first s, again $BENCH_ELAPSED s"
        rm -rf "$d"
    done
done
# shellcheck disable=SC2086
o=$(median -f .3f ${T[first,ours]}); p=$(median -f .3f ${T[first,peer]})
result "init + refresh + download of $N targets ($SIZE B each) vs python-tuf ngclient" "$o" "$p" s "$(ratio "$p" "$o")" "≥ 5.0x" "$(met "$p / $o >= 5.0")"
# shellcheck disable=SC2086
o=$(median -f .3f ${T[again,ours]}); p=$(median -f .3f ${T[again,peer]})
result "refresh with nothing new vs python-tuf ngclient" "$o" "$p" s "$(ratio "$p" "$o")" - -
bench_done
