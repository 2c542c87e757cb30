#!/usr/bin/env bash
# split-debug.sh BINDIR DEBUGDIR PROGRAM...: strips each release binary BINDIR/PROGRAM in place
# and keeps its debug information apart as DEBUGDIR/PROGRAM.debug, as Debian's dh_strip does:
#   objcopy --only-keep-debug --compress-debug-sections   the DWARF and symbol table, alone
#   strip --remove-section=.comment --remove-section=.note   (all symbols and debug sections go;
#         the build-id note stays, so debuginfod and /usr/lib/debug/.build-id can find the file)
#   objcopy --add-gnu-debuglink=PROGRAM.debug           gdb finds the file beside the binary, in
#         a .debug/ folder beside it, or under /usr/lib/debug/<dir of the binary>/
# Why: users run the stripped programs (a fifth to a half of the size, docs/ARCHITECTURE.md,
# "Release binaries"); a backtrace from the field is symbolised later with the matching .debug.
# Idempotent: a binary that is already stripped (no .debug_info, a .gnu_debuglink) keeps the
# .debug file of its link, which a second run must not overwrite with an empty one. A binary
# that SwiftPM linked again is unstripped again, and split again.
set -euo pipefail
bindir=${1:?usage: split-debug.sh BINDIR DEBUGDIR PROGRAM...}
debugdir=${2:?usage: split-debug.sh BINDIR DEBUGDIR PROGRAM...}
shift 2
mkdir -p "$debugdir"
for prog in "$@"; do
    bin=$bindir/$prog
    dbg=$debugdir/$prog.debug
    [[ -x $bin ]] || { echo "split-debug: $bin is missing: build it first (make release)" >&2; exit 1; }
    sections=$(readelf -SW "$bin")
    if ! grep -q '\.debug_info' <<<"$sections"; then
        if grep -q '\.gnu_debuglink' <<<"$sections" && [[ -s $dbg ]]; then
            echo "split-debug: $bin is already stripped ($dbg kept)"
            continue
        fi
        echo "split-debug: $bin has no debug information and no $dbg to link: rebuild it (rm $bin; make release)" >&2
        exit 1
    fi
    before=$(stat -c %s "$bin")
    # Written beside, then renamed: an interrupted run leaves the old binary or the new one.
    objcopy --only-keep-debug --compress-debug-sections=zlib "$bin" "$dbg.tmp"
    chmod 0644 "$dbg.tmp"
    strip --remove-section=.comment --remove-section=.note -o "$bin.stripped" "$bin"
    # --add-gnu-debuglink records the file's name and CRC: it reads the .debug file by that name.
    (cd "$debugdir" && mv -f "$prog.debug.tmp" "$prog.debug")
    objcopy --add-gnu-debuglink="$dbg" "$bin.stripped"
    chmod --reference="$bin" "$bin.stripped"
    mv -f "$bin.stripped" "$bin"
    echo "split-debug: $bin $before -> $(stat -c %s "$bin") bytes; debug info in $dbg ($(stat -c %s "$dbg") bytes)"
done
