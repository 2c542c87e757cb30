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
# Environment (defaults; under BENCH_QUICK=1 in brackets):
#   COURIER_BIN          directory holding courier-stage and courier-inboxd (skips the build)
#   BENCH_LATENCY_COUNT  packages for the latency figure: 100 [10] (at least 50 for a p99)
#   BENCH_APPLY_COUNT    packages for the apply-time figure: 100 [10]
#   BENCH_IDLE_SECONDS   idle period for the CPU figure: 60 [3]
#   BENCH_PKG_KIB        package payload size in KiB: 1024 [64]
#   BENCH_STRICT         if 1, exit 3 when a goal is not met (default: report only)
#   BENCH_PEER_SYNC      if 1, the peer makes each new tree durable (`sync -f`) before switching,
#                        as courier-inboxd does (default 0: the plain pipeline, no fsync at all)
#   TMPDIR               where the temporary workspace goes (~ 3 x (count x size) free)
#   COURIER_BENCH_TSV    set by run-all.sh: where the results go (scripts/bench/lib.sh)
set -euo pipefail
BENCH=inboxd
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LAT_N=$(bench_param BENCH_LATENCY_COUNT 100 10)
THR_N=$(bench_param BENCH_APPLY_COUNT 100 10)
IDLE_S=$(bench_param BENCH_IDLE_SECONDS 60 3)
PKG_KIB=$(bench_param BENCH_PKG_KIB 1024 64)
NFILES=16
GOAL_LAT_MS=25
GOAL_SPEEDUP=3
GOAL_RSS_MIB=16
GOAL_TICKS=0
TYPE=bench
FIRST_REV=20261121000   # revisions FIRST_REV+1 … (11 digits: name order = revision order)

(( PKG_KIB >= NFILES )) || die "BENCH_PKG_KIB must be at least $NFILES"
(( LAT_N >= 50 )) || say "warning: BENCH_LATENCY_COUNT=$LAT_N < 50: the p99 is only the maximum of a few samples"

# --- tools -------------------------------------------------------------------------------
bench_need inotifywait "apt-get install -y inotify-tools (or 'make bootstrap')"
bench_need zstd "tar --zstd needs it: apt-get install -y zstd"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed (tar --zstd)"
bench_need sha256sum "coreutils"
bench_need setsid "util-linux"
[[ -r /proc/self/stat ]] || die "/proc is not mounted"

# --- binaries ----------------------------------------------------------------------------
HERE=$BENCH_LIB_DIR
PEER_SCRIPT=$HERE/inboxd/peer.sh
DELIVER_PY=$HERE/inboxd/deliver.py
[[ -f $PEER_SCRIPT ]] || die "$PEER_SCRIPT is missing"
[[ -f $DELIVER_PY ]] || die "$DELIVER_PY is missing"
bench_bin courier-stage courier-inboxd
STAGE=$BIN/courier-stage
INBOXD=$BIN/courier-inboxd

# --- workspace ---------------------------------------------------------------------------
W=$(bench_workspace)
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
bench_space "$W" $(( TOTAL * PKG_KIB * 3 + 64 * 1024 ))


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
    bench_rand $(( bytes / NFILES + (i < bytes % NFILES ? 1 : 0) )) > "$W/tree/db/part-$(printf '%02d' "$i").bin"
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
    t0=$(bench_now_ns)
    mv -t "$W/$side/inbox/" -- "${names[@]}"   # one process: the renames follow each other closely
    wait_for 300 "$side to apply $THR_N packages" hook_ran "$side" $(( FIRST_REV + TOTAL ))
    wait_for 300 "$side to clear its inbox" inbox_empty "$side"
    t1=$(bench_now_ns)
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
ms() { calc -f .2f "$1 / 1e6"; }   # ns → ms
lat_med_o=$(ms "$(median "${lat_ours[@]}")"); lat_med_p=$(ms "$(median "${lat_peer[@]}")")
lat_p99_o=$(ms "$(p99 "${lat_ours[@]}")");    lat_p99_p=$(ms "$(p99 "${lat_peer[@]}")")
lat_min_o=$(ms "$(printf '%s\n' "${lat_ours[@]}" | sort -n | head -n 1)")
lat_max_o=$(ms "$(printf '%s\n' "${lat_ours[@]}" | sort -n | tail -n 1)")
lat_min_p=$(ms "$(printf '%s\n' "${lat_peer[@]}" | sort -n | head -n 1)")
lat_max_p=$(ms "$(printf '%s\n' "${lat_peer[@]}" | sort -n | tail -n 1)")
thr_o=$(calc -f .2f "$thr_ours"); thr_p=$(calc -f .2f "$thr_peer")
rss_o_mib=$(calc -f .1f "$rss_ours / 1024"); rss_p_mib=$(calc -f .1f "$rss_peer / 1024")
met_lat=$(met "$lat_med_o < $GOAL_LAT_MS")
met_thr=$(met "$thr_peer / $thr_ours >= $GOAL_SPEEDUP")
met_rss=$(met "$rss_ours / 1024 < $GOAL_RSS_MIB")
met_idle=$(met "$idle_ticks_ours <= $GOAL_TICKS")

PKG_LABEL=$(( PKG_KIB >= 1024 && PKG_KIB % 1024 == 0 ? PKG_KIB / 1024 : 0 ))
if (( PKG_LABEL )); then PKG_LABEL="${PKG_LABEL}MiB"; else PKG_LABEL="${PKG_KIB}KiB"; fi
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

bench_cmd "ours: courier-inboxd run --config inboxd.toml (inotify; keep = 2; hook: date +%s%N > FILE)"
bench_cmd "peer: bash scripts/bench/inboxd/peer.sh (inotifywait -m | while read: tar --zstd -xf, sha256sum -c, mv -T, ln -sfn + mv -T, hook, rm)${PEER_MODE:+ + sync -f}"
bench_cmd "delivery: scripts/bench/inboxd/deliver.py renames each package into the inbox and times the rename"
result "mv into the inbox → hook ran, $PKG_LABEL package, median" "$lat_med_o" "$lat_med_p" ms "$(ratio "$lat_med_p" "$lat_med_o")" \
    "< ${GOAL_LAT_MS} ms" "$met_lat"
result "mv into the inbox → hook ran, $PKG_LABEL package, p99" "$lat_p99_o" "$lat_p99_p" ms "$(ratio "$lat_p99_p" "$lat_p99_o")" - -
result "apply $THR_N packages moved in at once" "$thr_o" "$thr_p" s "$(ratio "$thr_peer" "$thr_ours")" "≥ ${GOAL_SPEEDUP}x" "$met_thr"
result "idle RSS of the daemon (peer: all its processes)" "$rss_o_mib" "$rss_p_mib" MiB - "< ${GOAL_RSS_MIB} MiB" "$met_rss"
result "idle CPU over ${IDLE_S} s (utime+stime)" "$idle_ticks_ours" "$idle_ticks_peer" ticks - "${GOAL_TICKS} ticks" "$met_idle"
result "idle CPU over ${IDLE_S} s (schedstat, information)" "$idle_us_ours" "$idle_us_peer" µs - - -
result "idle wake-ups over ${IDLE_S} s (context switches, information)" "$idle_sw_ours" "$idle_sw_peer" count - - -
bench_done
