#!/usr/bin/env bash
# Benchmark: `courier-deliver push` into many inbox directories, against the strongest shell peer
# an operator would use: a parallel copy, `printf '%s\n' inbox… | xargs -P8 -I{} cp PKG {}/`.
#
# What is compared, in the same run, alternating (who goes first alternates too), medians of
# BENCH_RUNS runs:
#   full    one full package (~BENCH_DELIVER_MIB MiB) into N empty inboxes;
#           peer: xargs -P8 cp of that package into each inbox.
#   mixed   the same outbox, N inboxes of which a quarter are new (full package), a quarter
#           hold revision 1 (delta from 1), a quarter revision 2 (delta from 2), a quarter are
#           up to date (nothing). Push decides from each client's status.json; the peer is
#           handed the answer: xargs -P8 -n2 cp over the (package, inbox) pairs to copy.
#   link    push --link into BENCH_DELIVER_LINK_INBOXES inboxes vs xargs -P8 ln (hard links
#           against hard links; never against a copy).
# for N in BENCH_DELIVER_INBOXES (10 50 200). Every copy is a real copy on the file system of
# TMPDIR, the same for both.
#
# The goal rows compare equal durability (ratio = peer time / our time, goal ≥ 1.0×):
#   push --no-sync   vs  xargs -P8 cp          neither flushes: both stop the clock with copies
#                                              that may still be dirty in the page cache;
#   push (default)   vs  xargs -P8 cp; sync    both wait until every copy is on disk (the sync's
#                                              time measured right after the peer's, the two added).
# push still does more in both: it verifies every package (signature, hashes) before renaming
# any copy, decides full/delta/nothing itself, writes under a dot-name and renames.
# Those rows are first pushes of the package: push's verification cache (--verify-cache) is
# emptied before each of its runs, so every run verifies. One more row, push --no-sync again
# with the verdict remembered from an earlier push (the cache kept), is the cron case: the same
# package pushed again to the clients that lag.
# An information row (goal "-") keeps the old comparison, the durable push against the plain
# cp, which is not equal work: where the peer's copies fit under the kernel's dirty limit it
# finishes at memory speed and its bytes reach the disk after its clock stopped, while push
# waits for the disk (1 GiB at 10 inboxes: no durable copier can beat memory there).
#
# Content: revisions 1, 2, 3 of a tree like a signature set, made here: text files of
# signature-like lines (they compress ~2×) and incompressible blobs, built into signed zstd
# packages by courier-stage; revision 3 changes a daily file and adds one, so its deltas are small.
#
# Environment (defaults; under BENCH_QUICK=1 in brackets):
#   BENCH_DELIVER_MIB            size of the tree in MiB (the package is ~3/4 of it): 128 [8]
#   BENCH_DELIVER_INBOXES        inbox counts: "10 50 200" ["10"]
#   BENCH_DELIVER_LINK_INBOXES   inboxes for the hard-link rows: 1000 [50]
#   BENCH_RUNS                   timed runs of each tool: 3 [1]
#   COURIER_BIN, TMPDIR, COURIER_BENCH_TSV: see lib.sh
set -euo pipefail
BENCH=deliver
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MIB=$(bench_param BENCH_DELIVER_MIB 128 8)
NLINK=$(bench_param BENCH_DELIVER_LINK_INBOXES 1000 50)
RUNS=$(bench_param BENCH_RUNS 3 1)
if [[ -n ${BENCH_DELIVER_INBOXES:-} ]]; then COUNTS=$BENCH_DELIVER_INBOXES
elif bench_quick; then COUNTS="10"; else COUNTS="10 50 200"; fi
for n in $COUNTS; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_DELIVER_INBOXES must list positive integers (got '$COUNTS')"; done
[[ -n ${COURIER_BENCH_CMDS:-} ]] && printf '%s\tsettings: BENCH_DELIVER_INBOXES=%s\n' "$BENCH" "$COUNTS" >> "$COURIER_BENCH_CMDS"
MAXN=$(printf '%s\n' $COUNTS | sort -n | tail -n 1)

bench_need xargs "apt-get install -y findutils"
bench_bin courier-stage courier-deliver
STAGE=$BIN/courier-stage
DELIVER=$BIN/courier-deliver

W=$(bench_workspace)
trap 'rm -rf "$W"' EXIT
bench_space "$W" $(( MIB * 1024 * (MAXN + 6) ))

# --- content: three revisions, one full package, two small deltas -------------------------
make_tree() {   # make_tree DIR REV: a signature-set-like tree of ~MIB MiB
    local dir=$1 rev=$2 i
    mkdir -p "$dir"
    # 4 random blobs (5/8 of the size) and 8 text files (3/8): shared by every revision.
    if [[ ! -f $W/common/blob-0.bin ]]; then
        mkdir -p "$W/common"
        for i in 0 1 2 3; do bench_rand $(( (MIB << 20) * 5 / 32 )) > "$W/common/blob-$i.bin"; done
        python3 - "$W/common" $(( (MIB << 20) * 3 / 64 )) <<'EOF'
import random, sys
out, size = sys.argv[1], int(sys.argv[2])
rnd = random.Random(1)
fams = ["Win.Trojan", "Win.Malware", "Unix.Exploit", "Doc.Dropper", "Html.Phishing", "Js.Miner"]
for f in range(8):
    lines, n = [], 0
    while n < size:
        l = f"{rnd.choice(fams)}.{rnd.randrange(10**7)}-{f}{n}:0:*:{rnd.getrandbits(96):024x}{'0' * rnd.randrange(0, 24)}{rnd.getrandbits(32):08x}\n"
        lines.append(l); n += len(l)
    open(f"{out}/main-{f}.ndb", "w").write("".join(lines))
EOF
    fi
    for i in "$W"/common/*; do ln "$i" "$dir/"; done
    python3 -c 'import random, sys
r = random.Random(int(sys.argv[2]))
open(sys.argv[1], "w").write("".join(f"Daily.{sys.argv[2]}.{i}:{r.getrandbits(128):032x}\n" for i in range(6000)))' "$dir/daily.ndb" "$rev"
    (( rev < 3 )) || printf 'hotfix %s\n' "$rev" > "$dir/hotfix.ndb"
}
say "a tree of ~${MIB} MiB (text and random blobs), revisions 1-3; inboxes: $COUNTS (copy), $NLINK (link); $RUNS run(s)"
"$STAGE" keygen --out "$W/k" >/dev/null
for rev in 1 2 3; do make_tree "$W/tree/$rev" "$rev"; done
"$STAGE" build --tree "$W/tree/1" --type bench --revision 1 --key "$W/k" --out-dir "$W/old" >/dev/null
"$STAGE" build --tree "$W/tree/2" --type bench --revision 2 --key "$W/k" --out-dir "$W/old" >/dev/null
O=$W/outbox/bench/3
"$STAGE" build --tree "$W/tree/3" --type bench --revision 3 --key "$W/k" --out-dir "$O" >/dev/null
for b in 1 2; do
    "$STAGE" build --tree "$W/tree/3" --type bench --revision 3 --key "$W/k" --out-dir "$O" --delta-from "$W/old/bench_$b.cpkg" >/dev/null
done
FULL=$O/bench_3.cpkg
size_of() { stat -c %s "$1"; }
PKG_MIB=$(calc -f .1f "$(size_of "$FULL") / 1048576")
say "full package: ${PKG_MIB} MiB; deltas: $(size_of "$O/bench_3_from_1.cpkg") and $(size_of "$O/bench_3_from_2.cpkg") bytes"
rm -rf "$W/tree" "$W/common"

status_json() {   # status_json REV: a client's status.json holding revision REV of bench
    printf '{"format":1,"host":"bench","updated":"2026-01-01T00:00:00Z","types":{"bench":{"installed":%s,"applied_at":"2026-01-01T00:00:00Z","content_created":"2026-01-01T00:00:00Z","kept":[],"pending":[]}}}\n' "$1"
}
# Inboxes: full/<N>/cNNNN/inbox (no status), mixed/<N>/cNNNN/{inbox,state/status.json}.
# PAIRS_<N>: "package inbox" lines for the mixed peer (what push decides, given to the peer).
declare -A PAIRS
for n in $COUNTS; do
    pairs=""
    for i in $(seq -f %04g 1 "$n"); do
        mkdir -p "$W/full/$n/c$i/inbox" "$W/mixed/$n/c$i/inbox"
        case $(( 10#$i % 4 )) in
            1) pairs+="$FULL $W/mixed/$n/c$i/inbox"$'\n' ;;
            2|3) b=$(( 10#$i % 4 - 1 ))
                 mkdir -p "$W/mixed/$n/c$i/state"; status_json "$b" > "$W/mixed/$n/c$i/state/status.json"
                 pairs+="$O/bench_3_from_$b.cpkg $W/mixed/$n/c$i/inbox"$'\n' ;;
            0) mkdir -p "$W/mixed/$n/c$i/state"; status_json 3 > "$W/mixed/$n/c$i/state/status.json" ;;
        esac
    done
    PAIRS[$n]=$pairs
done
for i in $(seq -f %04g 1 "$NLINK"); do mkdir -p "$W/link/c$i/inbox"; done

# Removes every package from a set of inboxes and flushes, so that each run starts with no
# dirty pages of the run before.
clear_inboxes() { find "$W/$1" -path '*/inbox/*' -type f -delete; sync; }

# VC: push's verification cache, emptied before each cold run (cold_cache), kept for "remembered".
VC=$W/verify-cache
cold_cache() { rm -rf "$VC"; }
ours()       { "$DELIVER" push --outbox "$W/outbox" --trust "$W/k.pub" --inbox "$W/$1/c*/inbox" --quiet --verify-cache "$VC" >/dev/null; }
nosync()     { "$DELIVER" push --outbox "$W/outbox" --trust "$W/k.pub" --inbox "$W/$1/c*/inbox" --quiet --no-sync --verify-cache "$VC" >/dev/null; }
again_push() { "$DELIVER" push --outbox "$W/outbox" --trust "$W/k.pub" --inbox "$W/$1/c*/inbox" --quiet --no-sync --verify-cache "$VC" > "$W/again.out"; }
peer_full()  { printf '%s\n' "$W"/full/"$1"/c*/inbox | xargs -P8 -I{} cp "$FULL" {}/; }
peer_mixed() { printf '%s' "${PAIRS[$1]}" | xargs -P8 -n2 cp; }
ours_link()  { cold_cache; "$DELIVER" push --outbox "$W/outbox" --trust "$W/k.pub" --inbox "$W/link/c*/inbox" --link --quiet --verify-cache "$VC" >/dev/null; }
peer_link()  { printf '%s\n' "$W"/link/c*/inbox | xargs -P8 -I{} ln "$FULL" {}/; }

bench_cmd "ours:  courier-deliver push --outbox O --trust K --inbox 'full/N/c*/inbox' --quiet   (verifies, syncfs before the renames)"
bench_cmd "ours:  courier-deliver push … --no-sync   (verifies, renames, no syncfs: against the peer without sync)"
bench_cmd "ours:  the same, --verify-cache emptied before each run (first push: verifies), and kept (again: the verdict remembered)"
bench_cmd "peer:  printf '%s\n' full/N/c*/inbox | xargs -P8 -I{} cp O/bench/3/bench_3.cpkg {}/   (no verification, no fsync)"
bench_cmd "ours:  courier-deliver push --outbox O --trust K --inbox 'mixed/N/c*/inbox' --quiet   (decides full/delta/nothing from each status.json)"
bench_cmd "peer:  printf 'PKG INBOX\n'… | xargs -P8 -n2 cp   (the pairs push decided, handed to the peer)"
bench_cmd "peer, durable: each peer run followed by sync, the two times added (against the default push)"
bench_cmd "ours:  courier-deliver push … --inbox 'link/c*/inbox' --link --quiet"
bench_cmd "peer:  printf '%s\n' link/c*/inbox | xargs -P8 -I{} ln O/bench/3/bench_3.cpkg {}/"

# check SET N: every inbox of a sample holds what it should, byte for byte.
check() {
    local set=$1 n=$2 i f want
    for i in $(seq -f %04g 1 $(( n > 20 ? n / 20 : 1 )) "$n"); do
        want=""
        if [[ $set == full ]]; then want=$FULL
        else case $(( 10#$i % 4 )) in 1) want=$FULL ;; 2|3) want=$O/bench_3_from_$(( 10#$i % 4 - 1 )).cpkg ;; esac; fi
        f=$(find "$W/$set/$n/c$i/inbox" -type f)
        if [[ -z $want ]]; then [[ -z $f ]] || die "$set/$n/c$i: expected nothing, found $f"; continue; fi
        [[ $(basename "$f") == "$(basename "$want")" ]] && cmp -s "$want" "$f" || die "$set/$n/c$i: expected a copy of $(basename "$want"), found '${f:-nothing}'"
    done
}

declare -A T
run_pair() {   # run_pair SET N RUN: push, push --no-sync (first, again) and the peer once each, the order alternating by run
    local set=$1 n=$2 run=$3 tool
    local order=(ours nosync again peer); (( run % 2 == 0 )) && order=(peer again nosync ours)
    for tool in "${order[@]}"; do
        clear_inboxes "$set/$n"
        case $tool in
            ours|nosync) cold_cache; bench_time "$tool" "$set/$n" ;;
            again)
                # The verdicts of an earlier push of the same packages kept: one untimed push first.
                # The timed one must say they were remembered (push remembers a package only
                # once it is 2 s old: VerifiedCache.minimumAge), else this row would be cold.
                cold_cache; nosync "$set/$n"; clear_inboxes "$set/$n"
                bench_time again_push "$set/$n"
                grep -q "remembered from an earlier push" "$W/again.out" ||
                    die "push --no-sync again did not remember the verdicts: $(tail -n 1 "$W/again.out")" ;;
            peer) bench_time "peer_$set" "$n" ;;
        esac
        T[$set,$n,$tool]+="$BENCH_ELAPSED "
        say "run $run $set $n inboxes $tool: ${BENCH_ELAPSED} s"
        if [[ $tool == peer ]]; then
            # The peer made durable, as the default push is: its time plus a sync right after.
            local t=$BENCH_ELAPSED
            bench_time sync
            T[$set,$n,peersync]+="$(calc -f .6f "$t + $BENCH_ELAPSED") "
        fi
        (( run == 1 )) && check "$set" "$n"
    done
    clear_inboxes "$set/$n"
}
for run in $(seq 1 "$RUNS"); do
    for n in $COUNTS; do run_pair full "$n" "$run"; run_pair mixed "$n" "$run"; done
    order=(ours peer); (( run % 2 == 0 )) && order=(peer ours)
    for tool in "${order[@]}"; do
        clear_inboxes link
        if [[ $tool == ours ]]; then bench_time ours_link; else bench_time peer_link; fi
        T[link,$tool]+="$BENCH_ELAPSED "
        say "run $run link $NLINK inboxes $tool: ${BENCH_ELAPSED} s"
    done
    clear_inboxes link
    # Each hard link made or removed changed the package's ctime, and push remembers a verdict
    # only for a package whose ctime is 2 s old (VerifiedCache.minimumAge): the next run's
    # "again" row would otherwise be cold. Untimed.
    sleep 2.1
done

for n in $COUNTS; do
    for set in full mixed; do
        # shellcheck disable=SC2086
        o=$(median -f .3f ${T[$set,$n,ours]}); p=$(median -f .3f ${T[$set,$n,peer]})
        # shellcheck disable=SC2086
        q=$(median -f .3f ${T[$set,$n,nosync]}); ps=$(median -f .3f ${T[$set,$n,peersync]})
        # shellcheck disable=SC2086
        a=$(median -f .3f ${T[$set,$n,again]})
        if [[ $set == full ]]; then what="a ${PKG_MIB} MiB package into $n inboxes"
        else what="mixed (1/4 full, 1/2 small deltas, 1/4 nothing) into $n inboxes"; fi
        result "push --no-sync $what vs xargs -P8 cp (neither flushes; first push: verifies)" "$q" "$p" s "$(ratio "$p" "$q")" "≥ 1.0x" "$(met "$p / $q >= 1.0")"
        result "push --no-sync again, the verification remembered, $what vs xargs -P8 cp" "$a" "$p" s "$(ratio "$p" "$a")" "≥ 1.0x" "$(met "$p / $a >= 1.0")"
        result "push $what vs xargs -P8 cp then sync (both durable)" "$o" "$ps" s "$(ratio "$ps" "$o")" "≥ 1.0x" "$(met "$ps / $o >= 1.0")"
        result "  push (durable) vs xargs -P8 cp, not flushed (information: unequal work)" "$o" "$p" s "$(ratio "$p" "$o")" - -
    done
done
# shellcheck disable=SC2086
o=$(median -f .3f ${T[link,ours]}); p=$(median -f .3f ${T[link,peer]})
result "push --link into $NLINK inboxes vs xargs -P8 ln" "$o" "$p" s "$(ratio "$p" "$o")" "≥ 1.0x" "$(met "$p / $o >= 1.0")"
bench_done
