#!/usr/bin/env bash
# deb.sh BINDIR OUTDIR [REVISION [DEBUGDIR]]: builds OUTDIR/courier_<version>-<REVISION>_<arch>.deb
# with dpkg-deb from the stripped release binaries in BINDIR (`make deb`; docs/INSTALL.md). The
# version is CourierVersion.string (Sources/CourierCore/Format/Version.swift), REVISION the
# Debian revision (default 1). With DEBUGDIR (make release's .build/debug-info), also
# courier-dbgsym_<version>_<arch>.deb, as Debian's dh_strip makes it: each <program>.debug at
# /usr/lib/debug/.build-id/<xx>/<rest>.debug, where gdb looks a binary's build-id up; refused
# when a .debug file is not of the binary's build. Prints the path of the package on its last line.
#
# The layout is `make install`'s with PREFIX=/usr, less its manifest (dpkg keeps the list):
#   /usr/bin/courier-*                          the programs (refused unless stripped)
#   /usr/lib/systemd/system/*                   scripts/systemd, /usr/local/ made /usr/
#   /usr/share/man/man{1,5}/*.gz                man/*.1 and man/*.5, gzip -9n
#   /usr/share/doc/courier/                     README.md, docs/*.md but INSTALL.md (uncompressed: the units'
#                                               Documentation= names them), copyright,
#                                               changelog.Debian.gz, examples/ (configuration,
#                                               crontabs, the nginx site)
#   /etc/logrotate.d/courier                    the one conffile (docs/OPERATIONS.md, "Logs")
#   /usr/share/lintian/overrides/courier        the overrides, each with its reason
#   DEBIAN/{control,md5sums,conffiles,postinst,prerm,postrm}   from packaging/debian
# Depends: is what dpkg-shlibdeps finds the binaries need (glibc and libgcc_s: the rest is
# linked statically, scripts/build/check-release.sh), glibc at least 2.36 for DT_RELR, plus
# adduser for postinst.
# DEB_COMPRESSION: dpkg-deb -Z (default xz, as Debian; gzip builds in seconds, the tests use it).
# Reproducible: every timestamp is the last commit's (SOURCE_DATE_EPOCH), owners root:root.
set -euo pipefail
usage="usage: deb.sh BINDIR OUTDIR [REVISION [DEBUGDIR]]"
bindir=$(realpath -m "${1:?$usage}")
outdir=$(realpath -m "${2:?$usage}")
revision=${3:-1}
debugdir=${4:+$(realpath -m "$4")}
cd "$(dirname "$0")/../.."
programs=(courier-stage courier-deliver courier-inboxd courier-tuf courier-pull)
fail() { echo "deb: $*" >&2; exit 1; }

upstream=$(sed -n 's/.*static let string = "\([^"]*\)".*/\1/p' Sources/CourierCore/Format/Version.swift)
[[ $upstream =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || fail "no version in Sources/CourierCore/Format/Version.swift (found '$upstream')"
[[ $revision =~ ^[0-9A-Za-z.+~]+$ ]] || fail "revision '$revision' is not a Debian revision (digits, letters, . + ~)"
version=$upstream-$revision
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-$(git log -1 --format='%an <%ae>' 2>/dev/null || true)}
[[ $maintainer == *'<'*'@'*'>' ]] || fail "no maintainer: set DEB_MAINTAINER='Name <address>'"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

for p in "${programs[@]}"; do
    [[ -x $bindir/$p ]] || fail "$bindir/$p is missing: run 'make release' first"
    # Read whole, then searched: under pipefail, `readelf | grep -q` fails when grep exits at
    # the first match and readelf dies of SIGPIPE, and the test would pass what it should refuse.
    sections=$(readelf -SW "$bindir/$p")
    if grep -Eq '\.debug_info|\.symtab' <<<"$sections"; then
        fail "$bindir/$p is not stripped: packages ship what 'make release' strips (scripts/build/split-debug.sh)"
    fi
done
for f in man/*.1 man/*.5; do [[ -f $f ]] || fail "$f is missing (make man; the section-5 pages are in git)"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/courier-deb.XXXXXX")
# The packages are written as <name>.deb.tmp in the output folder and renamed; a failed or
# interrupted dpkg-deb leaves no .tmp behind.
trap 'rm -rf "$work"; rm -f "$outdir"/courier*.deb.tmp' EXIT
root=$work/courier_$version
put() {  # put MODE SRC DST [sed]: DST under the package root; "sed": /usr/local/ becomes /usr/
    install -d -m 0755 "$(dirname "$root$3")"
    if [[ ${4:-} == sed ]]; then
        sed 's|/usr/local/|/usr/|g' "$2" > "$root$3"
        chmod "$1" "$root$3"
    else
        install -m "$1" "$2" "$root$3"
    fi
}
putgz() {  # putgz SRC DST.gz: compressed as Debian does (no name, no time in the header)
    install -d -m 0755 "$(dirname "$root$2")"
    gzip -9n < "$1" > "$root$2"
    chmod 0644 "$root$2"
}

for p in "${programs[@]}"; do put 0755 "$bindir/$p" "/usr/bin/$p"; done
for u in scripts/systemd/*.service scripts/systemd/*.timer scripts/systemd/*.path; do
    put 0644 "$u" "/usr/lib/systemd/system/${u##*/}" sed
done
for m in man/*.1; do putgz "$m" "/usr/share/man/man1/${m##*/}.gz"; done
for m in man/*.5; do putgz "$m" "/usr/share/man/man5/${m##*/}.gz"; done
# Not INSTALL.md: how to build and install the package is no use once it is installed (lintian:
# package-contains-upstream-installation-documentation).
for d in README.md docs/*.md; do
    [[ $d == docs/INSTALL.md ]] || put 0644 "$d" "/usr/share/doc/courier/${d##*/}"
done
for e in scripts/examples/*.toml; do put 0644 "$e" "/usr/share/doc/courier/examples/${e##*/}"; done
for c in scripts/cron/*.crontab; do put 0644 "$c" "/usr/share/doc/courier/examples/${c##*/}" sed; done
put 0644 scripts/nginx/courier-outbox.conf /usr/share/doc/courier/examples/nginx-courier-outbox.conf sed
put 0644 packaging/debian/copyright /usr/share/doc/courier/copyright
put 0644 packaging/debian/logrotate /etc/logrotate.d/courier
put 0644 packaging/debian/lintian-overrides /usr/share/lintian/overrides/courier
# changelog.Debian: one entry for this build (the project's history is git's).
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
{
    printf 'courier (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Built from the Courier repository at commit %s by make deb.\n\n' "$commit"
    printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} > "$work/changelog.Debian"
putgz "$work/changelog.Debian" /usr/share/doc/courier/changelog.Debian.gz

install -d -m 0755 "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find etc -type f -printf '/%p\n' | sort) > "$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"

# dpkg-shlibdeps reads debian/control of a source package: a minimal one, in the work folder.
mkdir -p "$work/src/debian"
printf 'Source: courier\n\nPackage: courier\nArchitecture: any\n' > "$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "${programs[@]/#/$root/usr/bin/}" 2>"$work/shlibdeps.err") \
    || fail "dpkg-shlibdeps failed: $(cat "$work/shlibdeps.err")"
depends=${shlibs#shlibs:Depends=}
[[ -n $depends && $depends != "$shlibs" ]] || fail "dpkg-shlibdeps printed no dependencies: '$shlibs'"
# dpkg-shlibdeps counts imported symbols, not version needs without one: the packed relocations
# (DT_RELR, lld -z pack-relative-relocs) need GLIBC_ABI_DT_RELR, glibc 2.36 (libc6's symbols
# file), which it left out (it said libc6 >= 2.35, and the programs would not start on 2.35).
versions=$(readelf -V "$root"/usr/bin/courier-*)
if grep -q GLIBC_ABI_DT_RELR <<<"$versions"; then
    libc=$(sed -n 's/.*libc6 (>= \([^)]*\)).*/\1/p' <<<"$depends")
    if [[ -z $libc ]] || dpkg --compare-versions "$libc" lt 2.36; then
        depends=$(sed 's/libc6 (>= [^)]*)/libc6 (>= 2.36)/' <<<"$depends")
    fi
    [[ $depends == *'libc6 (>= '* ]] || fail "dpkg-shlibdeps named no libc6 version: '$depends'"
fi
depends="$depends, adduser"

(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" packaging/debian/control.in > "$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control"

find "$root" -type d -exec chmod 0755 {} +
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$outdir"

# courier-dbgsym: the fields dh_gencontrol gives it (Auto-Built-Package, Build-Ids), the doc
# directory a link to courier's, as debhelper makes it.
if [[ -n $debugdir ]]; then
    droot=$work/courier-dbgsym_$version
    ids=()
    for p in "${programs[@]}"; do
        id=$(readelf -n "$bindir/$p" | sed -n 's/.*Build ID: //p')
        [[ $id =~ ^[0-9a-f]{4,}$ ]] || fail "$bindir/$p has no build-id"
        dbg=$debugdir/$p.debug
        [[ -f $dbg ]] || fail "$dbg is missing: make release writes it (or leave DEBUGDIR out)"
        dbgid=$(readelf -n "$dbg" 2>/dev/null | sed -n 's/.*Build ID: //p')
        [[ $dbgid == "$id" ]] || fail "$dbg (build-id '$dbgid') is not the debug information of $bindir/$p ($id)"
        install -D -m 0644 "$dbg" "$droot/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
        ids+=("$id")
    done
    install -d -m 0755 "$droot/usr/share/doc" "$droot/DEBIAN"
    ln -s courier "$droot/usr/share/doc/courier-dbgsym"
    (cd "$droot" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
        > "$droot/DEBIAN/md5sums"
    {
        echo "Package: courier-dbgsym"
        echo "Source: courier"
        echo "Version: $version"
        echo "Auto-Built-Package: debug-symbols"
        echo "Architecture: $arch"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $(du -sk --apparent-size --exclude=DEBIAN "$droot" | cut -f1)"
        echo "Depends: courier (= $version)"
        echo "Section: debug"
        echo "Priority: optional"
        echo "Description: debug symbols for courier"
        echo "Build-Ids: ${ids[*]}"
    } > "$droot/DEBIAN/control"
    chmod 0644 "$droot/DEBIAN/control" "$droot/DEBIAN/md5sums"
    find "$droot" -type d -exec chmod 0755 {} +
    find "$droot" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    ddeb=$outdir/courier-dbgsym_${version}_$arch.deb
    dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$droot" "$ddeb.tmp" >/dev/null
    mv -f "$ddeb.tmp" "$ddeb"
    echo "deb: $ddeb ($(stat -c %s "$ddeb") bytes)"
fi

deb=$outdir/courier_${version}_$arch.deb
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$root" "$deb.tmp" >/dev/null
mv -f "$deb.tmp" "$deb"
echo "deb: $deb ($(stat -c %s "$deb") bytes; Depends: $depends)"
echo "$deb"
