#!/usr/bin/env bash
# check-release.sh DIR: fails when a release binary in DIR was not linked the way `make release`
# intends (docs/ARCHITECTURE.md, "Memory of the idle daemon"): it must need no shared library
# but glibc's (libc, libm, the dynamic loader) and libgcc_s, and carry packed relative
# relocations (.relr.dyn). A fallback to libarchive.so or libstdc++.so — say, after a pkgConfig
# line comes back into Package.swift — would cost the idle daemon megabytes without a word.
set -euo pipefail
dir=${1:?usage: check-release.sh DIR}
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
done
exit $status
