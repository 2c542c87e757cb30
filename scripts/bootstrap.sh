#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need on a fresh Debian machine.
# Idempotent: apt-get update and install run only when a package is missing; pip likewise.
set -euo pipefail

# liblzma-dev, libbz2-dev, nettle-dev: the static archives `make release` links with libarchive.a.
# gpgv: checks vendors' OpenPGP signatures (signature_format = "openpgp"); gnupg, minisign and
# signify-openbsd: the tests sign with the vendors' real tools. tinyproxy, squid: the fetcher's
# proxy tests (squid with its stock rules: absolute-form http://, CONNECT for https://).
# xdelta3, bsdiff: the delta-size peers of `make bench`; xfsprogs: the reflink (FICLONE) test
# of push on a loop-mounted XFS image (skipped, saying so, where mounting is not allowed).
# faketime: the TUF interop tests (Tests/interop/tuf) move the clients' clock to expire metadata.
# strace: DurabilityOrderTests watch the order of each program's fsync/syncfs and renames.
# nginx: serves outboxes and relays in the pull tests and the mirror simulation (issue #16);
# openssh-server: the Ansible role runs over real SSH against sshd instances on 127.0.0.1.
# binutils: make release strips with strip/objcopy; dpkg-dev (dpkg-shlibdeps), lintian, adduser and
# logrotate: make deb and its test (Tests/interop/test_deb.py).
debs=(libarchive-dev zlib1g-dev libzstd-dev liblzma-dev libbz2-dev nettle-dev libarchive-tools pkg-config time rsync inotify-tools
      tinyproxy squid gpgv gnupg minisign signify-openbsd xdelta3 bsdiff xfsprogs faketime strace nginx openssh-server openssh-client
      binutils dpkg-dev lintian adduser logrotate)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python peers for the tests: the independent format implementation (scripts/pycpkg.py).
pymissing=()
python3 -c 'import cryptography' 2>/dev/null || pymissing+=(cryptography)
python3 -c 'import pytest' 2>/dev/null || pymissing+=(pytest)
python3 -c 'import zstandard' 2>/dev/null || pymissing+=(zstandard)
# ansible-core: the tests deliver packages with Ansible's copy module, as operators do.
command -v ansible >/dev/null 2>&1 || pymissing+=(ansible-core)
# tuf: python-tuf's ngclient is the reference client of the TUF interop tests, its metadata API
# builds their repositories; pinned, because the tests compare courier-tuf with its exact behaviour.
python3 -c 'import tuf, sys; sys.exit(tuf.__version__ != "7.0.1")' 2>/dev/null || pymissing+=(tuf==7.0.1)
if [ ${#pymissing[@]} -gt 0 ]; then
  echo "bootstrap: pip installing ${pymissing[*]}"
  python3 -m pip install -q "${pymissing[@]}" || { echo "bootstrap: pip install ${pymissing[*]} failed" >&2; exit 1; }
fi
python3 -c 'import tuf.ngclient, securesystemslib.signer' \
  || { echo "bootstrap: python-tuf is not importable after installing it" >&2; exit 1; }
command -v faketime >/dev/null 2>&1 || { echo "bootstrap: faketime is missing after installing it" >&2; exit 1; }
