#!/usr/bin/env bash
# static-libs.sh DIR LIB...: fills DIR with links to the static archives lib<LIB>.a that
# `make release` links into the programs. The Makefile names them: libarchive and the codecs
# it uses (zstd, xz, bzip2, zlib, nettle for zip), and libstdc++ (the Swift runtime and toml++
# need it).
#
# Why: linked dynamically, libarchive.so maps libxml2, ICU, libacl and lz4 into every process,
# although Courier reads only tar, zip, gzip, xz and zstd; those libraries, and the dynamic
# linker's work on them, cost the idle daemon about 2.5 MiB of RSS, and put an XML parser into
# the address space of a root daemon. From a static archive the linker takes only the objects
# the programs call.
#
# How: the linker searches -L directories in order, and within one directory prefers lib<x>.so.
# DIR holds only the .a files and comes first (`-Xlinker -L DIR`), so `-larchive` (from the
# CArchive module map) and `-lstdc++` (from the Swift runtime) find the static archives. Debug
# builds and `make test` do not use DIR and link the shared libraries.
set -euo pipefail
dir=${1:?usage: static-libs.sh DIR LIB...}
shift
(( $# > 0 )) || { echo "usage: static-libs.sh DIR LIB..." >&2; exit 2; }
mkdir -p "$dir"
pkg() {  # the Debian package that holds lib$1.a
    case $1 in
        archive) echo libarchive-dev ;; zstd) echo libzstd-dev ;; lzma) echo liblzma-dev ;;
        bz2) echo libbz2-dev ;; z) echo zlib1g-dev ;; nettle) echo nettle-dev ;; stdc++) echo libstdc++-12-dev ;;
        *) echo "the package that provides lib$1.a" ;;
    esac
}
# The C compiler's own search path finds the archives wherever the distribution puts them:
# gcc if it is there, else the toolchain's clang.
cc=
for c in gcc clang cc; do command -v "$c" >/dev/null 2>&1 && { cc=$c; break; }; done
[[ -n $cc ]] || { echo "static-libs.sh: no C compiler (gcc, clang, cc) on PATH to find the static archives" >&2; exit 1; }
for lib in "$@"; do
    path=$("$cc" -print-file-name="lib$lib.a")
    if [[ $path != /* || ! -f $path ]]; then
        echo "static-libs.sh: lib$lib.a not found ($cc -print-file-name); install $(pkg "$lib")" >&2
        exit 1
    fi
    ln -sfn "$path" "$dir/lib$lib.a"
done
