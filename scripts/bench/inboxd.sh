#!/usr/bin/env bash
# Benchmark: courier-inboxd against a peer pipeline built from inotifywait + bash + GNU tar +
# sha256sum (scripts/bench/inboxd/peer.sh) doing the same steps: wait for close_write/moved_to of
# a *.cpkg, extract into a new directory, check each file's SHA-256, switch a `current` symlink
# atomically, run the hook, remove the package from the inbox. Both run side by side in one run,
# on the same packages, with the same hook (`date +%s%N > FILE`).
#
# Figures and goals:
#   latency from the rename into the inbox (inboxd/deliver.py times the rename itself) to the
#     hook running, 1 MiB package, median and p99 over BENCH_LATENCY_COUNT packages
#     (one at a time, alternating ours / peer)                           goal: median < 25 ms
#   time to apply BENCH_APPLY_COUNT packages moved in at once (one `mv`)  goal: >= 3x faster than the peer
#   idle RSS of the daemon (VmRSS, after the runs above)                  goal: < 16 MiB
#   CPU time (utime+stime ticks) over BENCH_IDLE_SECONDS of idleness     goal: 0 ticks
#   for information: the exact idle CPU time (schedstat, µs) and wake-ups (context switches)
#
# Environment:
#   COURIER_BIN          directory holding courier-stage and courier-inboxd (skips the build)
#   BENCH_LATENCY_COUNT  packages for the latency figure (default 100; at least 50 for a p99)
#   BENCH_APPLY_COUNT    packages for the apply-time figure (default 100)
#   BENCH_IDLE_SECONDS   idle period for the CPU figure (default 60; shorten for a quick run)
#   BENCH_PKG_KIB        package payload size in KiB (default 1024)
#   BENCH_RESULTS        if set, append tab-separated result lines to this file:
#                        bench<TAB>figure<TAB>ours<TAB>peer<TAB>ratio<TAB>goal<TAB>met
#   BENCH_STRICT         if 1, exit 3 when a goal is not met (default: report only)
#   BENCH_PEER_SYNC      if 1, the peer makes each new tree durable (`sync -f`) before switching,
#                        as courier-inboxd does (default 0: the plain pipeline, no fsync at all)
#   TMPDIR               where the temporary workspace goes (~ 3 x (count x size) free)
set -euo pipefail
export LC_ALL=C

readonly BENCH=inboxd
LAT_N=${BENCH_LATENCY_COUNT:-100}
THR_N=${BENCH_APPLY_COUNT:-100}
IDLE_S=${BENCH_IDLE_SECONDS:-60}
PKG_KIB=${BENCH_PKG_KIB:-1024}
NFILES=16
GOAL_LAT_MS=25
GOAL_SPEEDUP=3
GOAL_RSS_MIB=16
GOAL_TICKS=0
TYPE=bench
FIRST_REV=20261121000   # revisions FIRST_REV+1 … (11 digits: name order = revision order)

die() { echo "bench/inboxd: error: $*" >&2; exit 1; }
say() { echo "bench/inboxd: [${SECONDS}s] $*" >&2; }

for v in LAT_N THR_N IDLE_S PKG_KIB; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
(( PKG_KIB >= NFILES )) || die "BENCH_PKG_KIB must be at least $NFILES"
(( LAT_N >= 50 )) || say "warning: BENCH_LATENCY_COUNT=$LAT_N < 50: the p99 is only the maximum of a few samples"

# --- tools -------------------------------------------------------------------------------
command -v inotifywait >/dev/null \
    || die "inotifywait is missing: install it (apt-get install -y inotify-tools, or 'make bootstrap')"
command -v zstd >/dev/null || die "zstd is missing (tar --zstd needs it): apt-get install -y zstd"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed (tar --zstd)"
command -v sha256sum >/dev/null || die "sha256sum is missing (coreutils)"
command -v setsid >/dev/null || die "setsid is missing (util-linux)"
command -v python3 >/dev/null || die "python3 is missing"
[[ -n ${EPOCHREALTIME:-} ]] || die "bash >= 5 is needed (EPOCHREALTIME)"
[[ -r /proc/self/stat ]] || die "/proc is not mounted"

# --- binaries ----------------------------------------------------------------------------
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PEER_SCRIPT=$HERE/inboxd/peer.sh
DELIVER_PY=$HERE/inboxd/deliver.py
[[ -f $PEER_SCRIPT ]] || die "$PEER_SCRIPT is missing"
[[ -f $DELIVER_PY ]] || die "$DELIVER_PY is missing"
if [[ -n ${COURIER_BIN:-} ]]; then
    BIN=$(cd "$COURIER_BIN" && pwd) || die "COURIER_BIN=$COURIER_BIN is not a directory"
    say "using binaries from $BIN (COURIER_BIN)"
else
    say "building release binaries (swift build -c release --scratch-path .build-bench)"
    (cd "$REPO" && swift build -c release --scratch-path .build-bench >&2) \
        || die "swift build failed"
    BIN=$REPO/.build-bench/release
fi
STAGE=$BIN/courier-stage
INBOXD=$BIN/courier-inboxd
[[ -x $STAGE ]] || die "$STAGE not found or not executable"
[[ -x $INBOXD ]] || die "$INBOXD not found or not executable"

# --- workspace ---------------------------------------------------------------------------
W=$(mktemp -d "${TMPDIR:-/tmp}/courier-bench-inboxd.XXXXXX")
OURS_PID= PEER_BG= PEER_SID= DELIVER_PID=
cleanup() {
    # Only what this script started: the daemon and the delivery helper by their pids, the peer
    # (bash, inotifywait, the loop) by the session it was started in.
    if [[ -n $OURS_PID ]]; then kill -TERM "$OURS_PID" 2>/dev/null || true; wait "$OURS_PID" 2>/dev/null || true; fi
    if [[ -n $PEER_SID ]]; then kill -TERM -- "-$PEER_SID" 2>/dev/null || true
    elif [[ -n $PEER_BG ]]; then kill -TERM "$PEER_BG" 2>/dev/null || true; fi
    if [[ -n $PEER_BG ]]; then wait "$PEER_BG" 2>/dev/null || true; fi
    if [[ -n $DELIVER_PID ]]; then kill -TERM "$DELIVER_PID" 2>/dev/null || true; fi
    rm -rf -- "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TOTAL=$(( LAT_N + THR_N ))
need_kib=$(( TOTAL * PKG_KIB * 3 + 64 * 1024 ))
avail_kib=$(df -Pk "$W" | awk 'NR == 2 { print $4 }')
(( avail_kib >= need_kib )) \
    || die "not enough space in $W: need ~$((need_kib / 1024)) MiB, have $((avail_kib / 1024)) MiB (set TMPDIR)"

if command -v openssl >/dev/null && openssl rand 16 >/dev/null 2>&1; then
    rand() { openssl rand "$1"; }
else
    rand() { head -c "$1" /dev/urandom; }
fi

now_ns() { local t=$EPOCHREALTIME; echo "${t/./}000"; }

# Waiting without forking (a `sleep` process every few milliseconds would compete for the CPU
# with what is measured): `read -t` on a FIFO that nobody writes to.
mkfifo "$W/snooze"
exec {SNOOZE_FD}<> "$W/snooze"
snooze() { read -rt "$1" -u "$SNOOZE_FD" _ || true; }

say "workspace $W"
"$STAGE" keygen --out "$W/k" > "$W/keygen.log" 2>&1 \
    || { cat "$W/keygen.log" >&2; die "courier-stage keygen failed"; }
mkdir -p "$W/trust" "$W/pkgs" "$W/lists" "$W/tree/db"
cp "$W/k.pub" "$W/trust/"

# The content: NFILES incompressible files making up BENCH_PKG_KIB, plus a small file that
# names the revision (every package is a distinct full package of a new revision).
bytes=$(( PKG_KIB * 1024 ))
for (( i = 0; i < NFILES; i++ )); do
    rand $(( bytes / NFILES + (i < bytes % NFILES ? 1 : 0) )) > "$W/tree/db/part-$(printf '%02d' "$i").bin"
done
(cd "$W/tree" && sha256sum db/*.bin) > "$W/base.sha256"

say "building $TOTAL signed packages of ${PKG_KIB} KiB"
for (( i = 1; i <= TOTAL; i++ )); do
    rev=$(( FIRST_REV + i ))
    echo "$rev" > "$W/tree/revision.txt"
    "$STAGE" build --tree "$W/tree" --type "$TYPE" --revision "$rev" --key "$W/k" --out-dir "$W/pkgs" \
        > "$W/build.log" 2>&1 || { cat "$W/build.log" >&2; die "courier-stage build ($rev) failed"; }
    name=${TYPE}_$rev.cpkg
    [[ -f $W/pkgs/$name ]] || die "courier-stage build did not write $W/pkgs/$name"
    { cat "$W/base.sha256"; (cd "$W/tree" && sha256sum revision.txt); } > "$W/lists/$name.sha256"
done
PKG_BYTES=$(stat -c %s "$W/pkgs/${TYPE}_$(( FIRST_REV + 1 )).cpkg")

# The hook, the same for both sides: the moment it runs, in a file named by the revision.
hook_for() { echo "date +%s%N > $W/$1/hook/\$COURIER_REVISION"; }

# --- ours --------------------------------------------------------------------------------
mkdir -p "$W/ours/inbox" "$W/ours/hook" "$W/ours/stage"
cat > "$W/ours/inboxd.toml" <<EOF
inbox = "inbox"
state_dir = "state"
trust = "../trust"

[types.$TYPE]
keep = 2
apply_command = "$(hook_for ours)"
EOF
"$INBOXD" run --config "$W/ours/inboxd.toml" > "$W/ours/daemon.log" 2>&1 &
OURS_PID=$!

# --- peer --------------------------------------------------------------------------------
mkdir -p "$W/peer/inbox" "$W/peer/hook" "$W/peer/stage" "$W/peer/store"
PEER_MODE=; [[ ${BENCH_PEER_SYNC:-0} == 1 ]] && PEER_MODE=sync
setsid bash "$PEER_SCRIPT" "$W/peer/inbox" "$W/peer/store" "$W/lists" "$(hook_for peer)" ${PEER_MODE:+"$PEER_MODE"} \
    > "$W/peer/peer.log" 2>&1 < /dev/null &
PEER_BG=$!

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND…: poll every millisecond, without forking
    local limit=$1 what=$2 t; shift 2
    t=$EPOCHREALTIME
    local deadline=$(( ${t%.*} + limit ))
    until "$@"; do
        t=$EPOCHREALTIME
        (( ${t%.*} < deadline )) || { tail -n 20 "$W/ours/daemon.log" "$W/peer/peer.log" >&2 || true; die "timed out waiting for $what"; }
        snooze 0.001
    done
}
wait_for 30 "courier-inboxd to watch its inbox" grep -q "watching" "$W/ours/daemon.log"
wait_for 30 "inotifywait to watch the peer's inbox" grep -q "Watches established" "$W/peer/peer.log"
rss_start_ours=$(awk '/^VmRSS:/ { print $2 }' "/proc/$OURS_PID/status")
PEER_SID=$(ps -o sid= -p "$PEER_BG" | tr -d ' ')
[[ -n $PEER_SID ]] || die "cannot find the peer's session"
kill -0 "$OURS_PID" 2>/dev/null || { cat "$W/ours/daemon.log" >&2; die "courier-inboxd exited"; }

peer_pids() { ps -o pid= -s "$PEER_SID" | tr -d ' '; }
inbox_empty() {
    local f
    for f in "$W/$1/inbox"/* "$W/$1/inbox"/.[!.]*; do [[ -e $f ]] && return 1; done
    return 0
}
hook_ran() { [[ -s $W/$1/hook/$2 ]]; }

# Copies of the packages on the inbox's file system, so that delivery is one rename.
stage_copies() {  # stage_copies SIDE FROM TO
    local side=$1 i
    for (( i = $2; i <= $3; i++ )); do cp "$W/pkgs/${TYPE}_$(( FIRST_REV + i )).cpkg" "$W/$side/stage/"; done
}

# --- latency -----------------------------------------------------------------------------
say "latency: $LAT_N packages to each side, one at a time, alternating"
stage_copies ours 1 "$LAT_N"
stage_copies peer 1 "$LAT_N"
sync
coproc DELIVER { exec python3 -u "$DELIVER_PY"; }
lat_ours=() lat_peer=()
deliver_one() {  # deliver_one SIDE REV: sets LAT_NS (rename → hook); no subshell (coproc fds)
    local side=$1 rev=$2 t0 hook
    printf '%s\t%s\n' "$W/$side/stage/${TYPE}_$rev.cpkg" "$W/$side/inbox/${TYPE}_$rev.cpkg" >&"${DELIVER[1]}"
    read -r t0 <&"${DELIVER[0]}"
    [[ $t0 =~ ^[0-9]+$ ]] || die "delivery of $rev to $side failed: $t0"
    wait_for 30 "$side to apply $rev" hook_ran "$side" "$rev"
    wait_for 30 "$side to clear its inbox" inbox_empty "$side"
    read -r hook < "$W/$side/hook/$rev"
    LAT_NS=$(( hook - t0 ))
}
for (( i = 1; i <= LAT_N; i++ )); do
    rev=$(( FIRST_REV + i ))
    if (( i % 2 )); then order=(ours peer); else order=(peer ours); fi
    for side in "${order[@]}"; do
        deliver_one "$side" "$rev"
        if [[ $side == ours ]]; then lat_ours+=("$LAT_NS"); else lat_peer+=("$LAT_NS"); fi
        snooze 0.02
    done
done
dfd=${DELIVER[1]}
exec {dfd}>&-
wait "$DELIVER_PID" 2>/dev/null || true
DELIVER_PID=
[[ -z $(ls -A "$W/peer/quarantine" 2>/dev/null) ]] || die "the peer refused a package: $(cat "$W/peer/peer.log")"

# --- apply time --------------------------------------------------------------------------
say "apply time: $THR_N packages moved into each inbox at once"
first=$(( LAT_N + 1 ))
stage_copies ours "$first" "$TOTAL"
stage_copies peer "$first" "$TOTAL"
sync
apply_all() {  # apply_all SIDE: prints the seconds from the first rename to the last package done
    local side=$1 t0 t1 names=() i
    for (( i = first; i <= TOTAL; i++ )); do names+=("$W/$side/stage/${TYPE}_$(( FIRST_REV + i )).cpkg"); done
    t0=$(now_ns)
    mv -t "$W/$side/inbox/" -- "${names[@]}"   # one process: the renames follow each other closely
    wait_for 300 "$side to apply $THR_N packages" hook_ran "$side" $(( FIRST_REV + TOTAL ))
    wait_for 300 "$side to clear its inbox" inbox_empty "$side"
    t1=$(now_ns)
    python3 -c "print(f'{($t1 - $t0) / 1e9:.3f}')"
}
thr_ours=$(apply_all ours)
snooze 0.5
thr_peer=$(apply_all peer)
say "apply time: ours $thr_ours s, peer $thr_peer s"
for (( i = first; i <= TOTAL; i++ )); do
    r=$(( FIRST_REV + i ))
    hook_ran ours "$r" || die "ours did not run the hook for $r (refused?): $(tail -n 5 "$W/ours/daemon.log")"
    hook_ran peer "$r" || die "the peer did not run the hook for $r: $(tail -n 5 "$W/peer/peer.log")"
done
[[ $(readlink "$W/ours/state/store/$TYPE/current") == $(( FIRST_REV + TOTAL )) ]] || die "ours: current is not the last revision"
[[ $(readlink "$W/peer/store/current") == $(( FIRST_REV + TOTAL )) ]] || die "peer: current is not the last revision"

# --- idle --------------------------------------------------------------------------------
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# utime+stime of the whole process (threads that exited included), in clock ticks.
ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0; }
sum_over() {  # sum_over FUNCTION PID…
    local f=$1 s=0 p; shift
    for p in "$@"; do s=$(( s + $($f "$p") )); done
    echo "$s"
}
nthreads() { local t n=0; for t in /proc/"$1"/task/*; do n=$(( n + 1 )); done; echo "$n"; }
# Per thread: "tid cpu_ns context_switches" (schedstat is exact where ticks are sampled; every
# context switch of an idle thread is a wake-up).
thread_snapshot() {
    local p t ns sw
    for p in "$@"; do
        for t in /proc/"$p"/task/*; do
            read -r ns _ < "$t/schedstat" 2>/dev/null || continue
            sw=$(awk '/ctxt_switches:/ { s += $2 } END { print s + 0 }' "$t/status" 2>/dev/null) || continue
            echo "${t##*/} $ns $sw"
        done
    done
}
# thread_delta BEFORE AFTER: "cpu_us wakeups" over the threads alive at the end (a thread
# started in between counts whole).
thread_delta() {
    awk 'NR == FNR { a[$1] = $2; b[$1] = $3; next }
         { ns += $2 - a[$1]; sw += $3 - b[$1] }
         END { printf "%d %d\n", ns / 1000, sw }' "$1" "$2"
}

# Let the daemon settle: idle dispatch worker threads exit a few seconds after the last work.
prev=-1 stable=0
for (( i = 0; i < 30 && stable < 3; i++ )); do
    n=$(nthreads "$OURS_PID")
    if (( n == prev )); then stable=$(( stable + 1 )); else stable=0; fi
    prev=$n
    sleep 1
done
mapfile -t PEER_PIDS < <(peer_pids)
rss_ours=$(rss_kib "$OURS_PID")
rss_anon_ours=$(awk '/^RssAnon:/ { print $2 }' "/proc/$OURS_PID/status")
rss_file_ours=$(awk '/^RssFile:/ { print $2 }' "/proc/$OURS_PID/status")
rss_peer=$(sum_over rss_kib "${PEER_PIDS[@]}")
say "idle: measuring CPU over $IDLE_S s (BENCH_IDLE_SECONDS)"
t_ours0=$(ticks "$OURS_PID"); t_peer0=$(sum_over ticks "${PEER_PIDS[@]}")
thread_snapshot "$OURS_PID" > "$W/ours.idle0"; thread_snapshot "${PEER_PIDS[@]}" > "$W/peer.idle0"
sleep "$IDLE_S"
t_ours1=$(ticks "$OURS_PID"); t_peer1=$(sum_over ticks "${PEER_PIDS[@]}")
thread_snapshot "$OURS_PID" > "$W/ours.idle1"; thread_snapshot "${PEER_PIDS[@]}" > "$W/peer.idle1"
kill -0 "$OURS_PID" 2>/dev/null || die "courier-inboxd exited during the idle period"
idle_ticks_ours=$(( t_ours1 - t_ours0 )); idle_ticks_peer=$(( t_peer1 - t_peer0 ))
read -r idle_us_ours idle_sw_ours < <(thread_delta "$W/ours.idle0" "$W/ours.idle1")
read -r idle_us_peer idle_sw_peer < <(thread_delta "$W/peer.idle0" "$W/peer.idle1")
threads_ours=$(nthreads "$OURS_PID")

# --- report ------------------------------------------------------------------------------
stats=$(python3 - "$GOAL_LAT_MS" "$GOAL_SPEEDUP" "$GOAL_RSS_MIB" "$GOAL_TICKS" \
        "${lat_ours[*]}" "${lat_peer[*]}" "$thr_ours" "$thr_peer" "$rss_ours" "$rss_peer" \
        "$idle_ticks_ours" "$idle_ticks_peer" <<'EOF'
import math, statistics, sys
goal_ms, goal_x, goal_rss, goal_ticks = (float(x) for x in sys.argv[1:5])
lo = [int(x) / 1e6 for x in sys.argv[5].split()]
lp = [int(x) / 1e6 for x in sys.argv[6].split()]
to, tp, ro, rp, ko, kp = (float(x) for x in sys.argv[7:13])
def p99(v):
    v = sorted(v)
    return v[max(0, math.ceil(0.99 * len(v)) - 1)]   # nearest rank
yn = lambda b: "yes" if b else "no"
mo, mp = statistics.median(lo), statistics.median(lp)
po, pp = p99(lo), p99(lp)
print(f"{mo:.2f} {mp:.2f} {mp / mo:.2f} {yn(mo < goal_ms)}",
      f"{po:.2f} {pp:.2f} {pp / po:.2f}",
      f"{to:.2f} {tp:.2f} {tp / to:.2f} {yn(tp / to >= goal_x)}",
      f"{ro / 1024:.1f} {rp / 1024:.1f} {yn(ro / 1024 < goal_rss)}",
      f"{yn(ko <= goal_ticks)}",
      f"{min(lo):.2f} {max(lo):.2f} {min(lp):.2f} {max(lp):.2f}")
EOF
)
read -r lat_med_o lat_med_p lat_med_x met_lat lat_p99_o lat_p99_p lat_p99_x \
        thr_o thr_p thr_x met_thr rss_o_mib rss_p_mib met_rss met_idle \
        lat_min_o lat_max_o lat_min_p lat_max_p <<< "$stats"

PKG_LABEL=$(( PKG_KIB >= 1024 && PKG_KIB % 1024 == 0 ? PKG_KIB / 1024 : 0 ))
if (( PKG_LABEL )); then PKG_LABEL="${PKG_LABEL}MiB"; else PKG_LABEL="${PKG_KIB}KiB"; fi
T=$'\t'
rows=(
    "$BENCH${T}rename→hook median ms ($PKG_LABEL)${T}$lat_med_o${T}$lat_med_p${T}${lat_med_x}x${T}<${GOAL_LAT_MS} ms${T}$met_lat"
    "$BENCH${T}rename→hook p99 ms ($PKG_LABEL)${T}$lat_p99_o${T}$lat_p99_p${T}${lat_p99_x}x${T}-${T}-"
    "$BENCH${T}apply $THR_N packages s${T}$thr_o${T}$thr_p${T}${thr_x}x${T}>=${GOAL_SPEEDUP}x${T}$met_thr"
    "$BENCH${T}idle RSS MiB${T}$rss_o_mib${T}$rss_p_mib${T}-${T}<${GOAL_RSS_MIB} MiB${T}$met_rss"
    "$BENCH${T}idle CPU ticks / ${IDLE_S} s${T}$idle_ticks_ours${T}$idle_ticks_peer${T}-${T}${GOAL_TICKS} ticks${T}$met_idle"
    "$BENCH${T}idle CPU µs / ${IDLE_S} s (schedstat)${T}$idle_us_ours${T}$idle_us_peer${T}-${T}-${T}-"
    "$BENCH${T}idle wake-ups / ${IDLE_S} s${T}$idle_sw_ours${T}$idle_sw_peer${T}-${T}-${T}-"
)

echo
echo "inboxd benchmark: $(( PKG_BYTES / 1024 )) KiB packages ($NFILES files + revision.txt, zstd, signed),"
echo "  $LAT_N for latency (alternating, one at a time), $THR_N for apply time (moved in at once)"
echo "  ours: courier-inboxd run (inotify), keep = 2, hook: date +%s%N > FILE"
echo "  peer: inotifywait -m | while read: tar --zstd -xf, sha256sum -c, mv -T, ln -sfn + mv -T, hook, rm"
if [[ -n $PEER_MODE ]]; then
    echo "        + sync -f of each new tree (BENCH_PEER_SYNC=1); no signature, expiry or rollback check, no state, no retention"
else
    echo "        (no signature, expiry or rollback check, no fsync, no state file, no retention)"
fi
echo "  idle $IDLE_S s: ours ${idle_us_ours} µs on the CPU (schedstat), $idle_sw_ours wake-ups; peer ${idle_us_peer} µs, $idle_sw_peer wake-ups"
echo "  latency ms: ours min $lat_min_o max $lat_max_o; peer min $lat_min_p max $lat_max_p"
echo "  idle: ours $threads_ours threads, VmRSS $rss_ours KiB (anonymous $rss_anon_ours, file-backed $rss_file_ours;"
echo "        $rss_start_ours KiB before the first package); peer ${#PEER_PIDS[@]} processes, VmRSS $rss_peer KiB (sum)"
echo
fmt='%-34s %9s %9s %8s %10s %4s\n'
# shellcheck disable=SC2059
printf "$fmt" figure ours peer ratio goal met
for row in "${rows[@]}"; do
    IFS=$'\t' read -r _ f o p x g m <<< "$row"
    # shellcheck disable=SC2059
    printf "$fmt" "$f" "$o" "$p" "$x" "$g" "$m"
done

if [[ -n ${BENCH_RESULTS:-} ]]; then
    printf '%s\n' "${rows[@]}" >> "$BENCH_RESULTS"
    say "appended ${#rows[@]} lines to $BENCH_RESULTS"
fi

if [[ ${BENCH_STRICT:-0} == 1 && "$met_lat$met_thr$met_rss$met_idle" != yesyesyesyes ]]; then
    say "goal not met (BENCH_STRICT=1)"
    exit 3
fi
