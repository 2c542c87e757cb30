#!/usr/bin/env bash
# check-release.sh DIR [DEBUGDIR]: fails when a release binary in DIR was not linked the way
# `make release` intends (docs/ARCHITECTURE.md, "Memory of the idle daemon"): it must need no
# shared library but glibc's (libc, libm, the dynamic loader) and libgcc_s, and carry packed
# relative relocations (.relr.dyn). A fallback to libarchive.so or libstdc++.so — say, after a
# pkgConfig line comes back into Package.swift — would cost the idle daemon megabytes without a word.
# And that it is shipped as users get it (docs/ARCHITECTURE.md, "Release binaries"): stripped
# (no .debug_* section, no symbol table), with a .gnu_debuglink naming DEBUGDIR/<program>.debug
# (default: DIR/../debug-info), which holds the DWARF and the same build-id; and that the stripped
# program still runs (--version prints the version).
set -euo pipefail
dir=${1:?usage: check-release.sh DIR [DEBUGDIR]}
debugdir=${2:-$dir/../debug-info}
allowed='^(libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$'
status=0
for prog in courier-stage courier-deliver courier-inboxd courier-tuf courier-pull; do
    bin=$dir/$prog
    [[ -x $bin ]] || { echo "check-release: $bin is missing" >&2; status=1; continue; }
    needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    extra=$(grep -Ev "$allowed" <<<"$needed" || true)
    if [[ -n $extra ]]; then
        echo "check-release: $bin needs shared libraries it should have linked statically: $(echo $extra)" >&2
        status=1
    fi
    # Read whole, then searched: `readelf | grep -q` under pipefail fails when grep exits at the
    # first match and readelf dies of SIGPIPE.
    sections=$(readelf -SW "$bin")
    if ! grep -q '\.relr\.dyn' <<< "$sections"; then
        echo "check-release: $bin has no packed relative relocations (.relr.dyn): was it linked with lld -z pack-relative-relocs?" >&2
        status=1
    fi
    if grep -Eq '\.debug_|\.symtab' <<< "$sections"; then
        echo "check-release: $bin is not stripped (it has $(grep -Eo '\.(debug_[a-z_]+|symtab)' <<< "$sections" | sort -u | head -3 | xargs)): run scripts/build/split-debug.sh (make release does)" >&2
        status=1
    fi
    link=$(readelf --string-dump=.gnu_debuglink "$bin" 2>/dev/null | sed -n 's/^ *\[ *0\] *//p')
    if [[ $link != "$prog.debug" ]]; then
        echo "check-release: $bin has no .gnu_debuglink to $prog.debug (found '${link}')" >&2
        status=1
    elif [[ ! -f $debugdir/$link ]] || ! grep -q '\.debug_info' <<< "$(readelf -SW "$debugdir/$link" 2>/dev/null)"; then
        echo "check-release: $debugdir/$link, the debug information $bin links to, is missing or holds no .debug_info" >&2
        status=1
    else
        id=$(readelf -n "$bin" | sed -n 's/.*Build ID: //p')
        dbgid=$(readelf -n "$debugdir/$link" 2>/dev/null | sed -n 's/.*Build ID: //p')
        if [[ -z $id || $id != "$dbgid" ]]; then
            echo "check-release: $debugdir/$link (build-id '$dbgid') is not the debug information of $bin (build-id '$id')" >&2
            status=1
        fi
    fi
    version=$("$bin" --version 2>&1) || true
    if ! grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+' <<< "$version"; then
        echo "check-release: '$bin --version' did not print a version: ${version:0:200}" >&2
        status=1
    fi
done
exit $status
