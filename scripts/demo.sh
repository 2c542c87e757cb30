#!/usr/bin/env bash
# make demo: the package pipeline on Fixtures/, no network. Generates a signing key, builds a
# full package and a delta from the fixture upstream, verifies them, extracts the full one,
# applies the delta on top, and shows that the client tree equals the upstream byte for byte.
set -euo pipefail
bin=$(cd "${1:-.build/release}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
ws=$(mktemp -d /tmp/courier-demo.XXXXXX)
up="$root/Fixtures/upstream/virus-defs"
t0=$(date +%s%N)
step() { printf '\n\033[1m%s\033[0m\n' "$*"; }
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }

step "1. The staging server gets a signing key"
"$bin/courier-stage" keygen --out "$ws/stage.key" --comment "demo staging server" | sed 's/^/   /'
mkdir -p "$ws/client/trust" && cp "$ws/stage.key.pub" "$ws/client/trust/"

step "2. Upstream publishes virus-defs 20261120001; the stager packages it"
"$bin/courier-stage" build --tree "$up/20261120001" --type virus-defs --revision 20261120001 \
  --key "$ws/stage.key" --out-dir "$ws/outbox/virus-defs/20261120001" | sed 's/^/   /'

step "3. Upstream publishes 20261121001; the stager builds a full package and a delta"
"$bin/courier-stage" build --tree "$up/20261121001" --type virus-defs --revision 20261121001 \
  --key "$ws/stage.key" --out-dir "$ws/outbox/virus-defs/20261121001" | sed 's/^/   /'
"$bin/courier-stage" build --tree "$up/20261121001" --type virus-defs --revision 20261121001 \
  --key "$ws/stage.key" --out-dir "$ws/outbox/virus-defs/20261121001" \
  --delta-from "$ws/outbox/virus-defs/20261120001/virus-defs_20261120001.cpkg" | sed 's/^/   /'
( cd "$ws/outbox" && find . -name '*.cpkg' -printf '   %-60p %8s bytes\n' | sort )

step "4. Anyone can verify a package with the public key (what Ansible's validate: calls)"
"$bin/courier-deliver" verify --trust "$ws/client/trust" $(find "$ws/outbox" -name '*.cpkg' | sort) | sed 's/^/   /'

step "5. A tampered copy is refused, with the reason"
cp "$ws/outbox/virus-defs/20261120001/virus-defs_20261120001.cpkg" "$ws/tampered.cpkg"
printf 'X' | dd of="$ws/tampered.cpkg" bs=1 seek=3000 conv=notrunc status=none
set +e
"$bin/courier-deliver" verify --trust "$ws/client/trust" "$ws/tampered.cpkg" | sed 's/^/   /'
echo "   exit code ${PIPESTATUS[0]}"
set -e

step "6. The client extracts the first revision, then applies the delta to it"
"$bin/courier-inboxd" extract --trust "$ws/client/trust" --into "$ws/client/store/virus-defs/20261120001" \
  "$ws/outbox/virus-defs/20261120001/virus-defs_20261120001.cpkg" | sed 's/^/   /'
"$bin/courier-inboxd" extract --trust "$ws/client/trust" --into "$ws/client/store/virus-defs/20261121001" \
  --base "$ws/client/store/virus-defs/20261120001" \
  "$ws/outbox/virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg" | sed 's/^/   /'

step "7. The client's tree is the upstream's, byte for byte"
if diff -r "$up/20261121001" "$ws/client/store/virus-defs/20261121001" >/dev/null; then
  echo "   identical: $(find "$ws/client/store/virus-defs/20261121001" -type f | wc -l) files"
else
  echo "   DIFFERENT"; exit 1
fi

echo
echo "Done in $(ms) ms. Workspace: $ws"
