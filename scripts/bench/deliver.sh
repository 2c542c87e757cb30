#!/usr/bin/env bash
# Benchmark: `courier-deliver push` of one large package into many inboxes, against the two
# peers an operator would use: a `cp` loop and an `rsync` loop over the same targets.
#
# Every tool ends with the data on disk: courier-deliver fsyncs each file before its rename
# (that is its contract); the peers do not, so their timing includes a final `sync`.
#
# Goals (issue #5): on a copy, at least as fast as the faster peer (ratio >= 1); with the
# hard-link path on one file system, at least 10x faster than the faster peer's copy.
#
# The issue asks for 100 MiB into 1,000 inboxes. Copied, that is 98 GiB per tool and run: more
# than this machine's free disk (and ~12 minutes per tool at its ~140 MB/s). So the copies go to
# BENCH_DELIVER_COPY_INBOXES inboxes (50), and the 1,000-inbox figure for the peers is their
# per-inbox time from that run times 1,000 (a copy loop is linear in the number of targets).
# The hard-link path really runs on 1,000 inboxes, beside `cp -l` (a hard-link loop) as a
# like-for-like peer.
#
# Environment (defaults; under BENCH_QUICK=1 in brackets):
#   BENCH_DELIVER_MIB             package size in MiB: 100 [4]
#   BENCH_DELIVER_COPY_INBOXES    inboxes for the copy comparison: 50 [10]
#   BENCH_DELIVER_LINK_INBOXES    inboxes for the hard-link path: 1000 [100]
#   BENCH_RUNS                    timed runs of each tool, alternating: 3 [1]
#   COURIER_BIN, TMPDIR, COURIER_BENCH_TSV: see lib.sh
set -euo pipefail
BENCH=deliver
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MIB=$(bench_param BENCH_DELIVER_MIB 100 4)
NCOPY=$(bench_param BENCH_DELIVER_COPY_INBOXES 50 10)
NLINK=$(bench_param BENCH_DELIVER_LINK_INBOXES 1000 100)
RUNS=$(bench_param BENCH_RUNS 3 1)

bench_need rsync "apt-get install -y rsync (or 'make bootstrap')"
bench_bin courier-stage courier-deliver
STAGE=$BIN/courier-stage
DELIVER=$BIN/courier-deliver

W=$(bench_workspace)
trap 'rm -rf "$W"' EXIT
bench_space "$W" $(( MIB * 1024 * (NCOPY + 3) ))

say "a ${MIB} MiB package (random bytes: incompressible), ${NCOPY} copy inboxes, ${NLINK} link inboxes"
mkdir -p "$W/tree" "$W/outbox"
bench_rand $(( MIB << 20 )) > "$W/tree/main.cvd"
"$STAGE" keygen --out "$W/k" >/dev/null
"$STAGE" build --tree "$W/tree" --type bench --revision 1 --key "$W/k" --out-dir "$W/outbox/bench/1" --compression none >/dev/null
PKG="$W/outbox/bench/1/bench_1.cpkg"
for i in $(seq -w 1 "$NCOPY"); do mkdir -p "$W/copy/c$i/inbox"; done
for i in $(seq -w 1 "$NLINK"); do mkdir -p "$W/link/c$i/inbox"; done
COPY_INBOXES=("$W"/copy/c*/inbox)
LINK_INBOXES=("$W"/link/c*/inbox)

clear_inboxes() { find "$W/$1" -mindepth 3 -maxdepth 3 -type f -delete; sync; }
ours_copy() { "$DELIVER" push --outbox "$W/outbox" --trust "$W/k.pub" --inbox "$W/copy/c*/inbox" --quiet >/dev/null; }
peer_cp()   { local d; for d in "${COPY_INBOXES[@]}"; do cp "$PKG" "$d/"; done; sync; }
peer_rsync(){ local d; for d in "${COPY_INBOXES[@]}"; do rsync "$PKG" "$d/"; done; sync; }
ours_link() { "$DELIVER" push --outbox "$W/outbox" --trust "$W/k.pub" --inbox "$W/link/c*/inbox" --link --quiet >/dev/null; }
peer_cpl()  { local d; for d in "${LINK_INBOXES[@]}"; do cp -l "$PKG" "$d/"; done; sync; }

bench_cmd "ours:  courier-deliver push --outbox O --trust K --inbox 'copy/c*/inbox' --quiet   ($NCOPY inboxes, fsync per file)"
bench_cmd "peer:  for d in copy/c*/inbox; do cp PKG \$d/; done; sync"
bench_cmd "peer:  for d in copy/c*/inbox; do rsync PKG \$d/; done; sync"
bench_cmd "ours:  courier-deliver push … --inbox 'link/c*/inbox' --link --quiet   ($NLINK inboxes)"
bench_cmd "peer:  for d in link/c*/inbox; do cp -l PKG \$d/; done; sync"

declare -a T_OURS T_CP T_RSYNC T_LINK T_CPL
check_copies() {
    local d n=0
    for d in "${COPY_INBOXES[@]}"; do cmp -s "$PKG" "$d/bench_1.cpkg" && n=$((n + 1)); done
    [[ $n == "$NCOPY" ]] || die "$1: only $n of $NCOPY inboxes hold an identical copy"
}
for run in $(seq 1 "$RUNS"); do
    for tool in ours cp rsync; do
        clear_inboxes copy
        case $tool in
            ours)  bench_time ours_copy;  T_OURS+=("$BENCH_ELAPSED") ;;
            cp)    bench_time peer_cp;    T_CP+=("$BENCH_ELAPSED") ;;
            rsync) bench_time peer_rsync; T_RSYNC+=("$BENCH_ELAPSED") ;;
        esac
        say "run $run $tool: ${BENCH_ELAPSED} s"
        [[ $run == 1 ]] && check_copies "$tool"
    done
    for tool in link cpl; do
        clear_inboxes link
        case $tool in
            link) bench_time ours_link; T_LINK+=("$BENCH_ELAPSED") ;;
            cpl)  bench_time peer_cpl;  T_CPL+=("$BENCH_ELAPSED") ;;
        esac
        say "run $run $tool: ${BENCH_ELAPSED} s"
    done
done
clear_inboxes copy; clear_inboxes link

ours=$(median -f .3f "${T_OURS[@]}")
cp_t=$(median -f .3f "${T_CP[@]}")
rs_t=$(median -f .3f "${T_RSYNC[@]}")
best=$(python3 -c 'import sys; print(min(float(sys.argv[1]), float(sys.argv[2])))' "$cp_t" "$rs_t")
r=$(ratio "$best" "$ours")
result "push ${MIB} MiB to ${NCOPY} inboxes (copy) vs faster of cp/rsync" "$ours" "$best" s "$r" "≥ 1x" "$(met "$best / $ours >= 1")"
result "push ${MIB} MiB to ${NCOPY} inboxes (copy) vs cp loop" "$ours" "$cp_t" s "$(ratio "$cp_t" "$ours")" - -
result "push ${MIB} MiB to ${NCOPY} inboxes (copy) vs rsync loop" "$ours" "$rs_t" s "$(ratio "$rs_t" "$ours")" - -

link=$(median -f .3f "${T_LINK[@]}")
cpl=$(median -f .3f "${T_CPL[@]}")
peer1000=$(calc -f .1f "$best / $NCOPY * $NLINK")
result "push ${MIB} MiB to ${NLINK} inboxes, --link vs faster peer's copy (per-inbox time x ${NLINK})" "$link" "$peer1000" s "$(ratio "$peer1000" "$link")" "≥ 10x" "$(met "$peer1000 / $link >= 10")"
result "push ${MIB} MiB to ${NLINK} inboxes, --link vs cp -l loop" "$link" "$cpl" s "$(ratio "$cpl" "$link")" - -
bench_done
