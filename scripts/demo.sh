#!/usr/bin/env bash
# make demo: the whole pipeline as a short story, on this machine, no network beyond 127.0.0.1.
#
#   bash scripts/demo.sh [BIN_DIR]          BIN_DIR holds courier-stage, courier-deliver, courier-inboxd
#   DEMO_WORKDIR=/tmp/x bash scripts/demo.sh BIN_DIR    use (and keep) that empty directory
#
# A staging server with a fresh key stages three content types — virus-defs (a directory of
# publisher revisions, Fixtures/upstream), ips-rules (a snapshot folder) and phishing-urls (a
# vendor tarball on a local HTTP server) — into its outbox. Three clients run courier-inboxd;
# courier-deliver pushes to them by policy: the pilot group takes the latest of everything,
# production keeps virus-defs on the first staged revision. Upstream then publishes again: the
# stager builds deltas, the clients take them, and the fleet report shows who holds what.
# Everything happens in a workspace that is kept for the reader (its path is printed at the end);
# Tests/interop/test_demo.py runs this script and checks every client's store byte for byte.
set -euo pipefail

bin=$(cd "${1:-.build/release}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
helpers="$root/scripts/demo"
for p in courier-stage courier-deliver courier-inboxd; do
  [[ -x "$bin/$p" ]] || { echo "demo: $bin/$p not found (build first: make release)" >&2; exit 64; }
done
if [[ -n "${DEMO_WORKDIR:-}" ]]; then
  mkdir -p "$DEMO_WORKDIR"
  ws=$(cd "$DEMO_WORKDIR" && pwd)
  [[ -z "$(ls -A "$ws")" ]] || { echo "demo: DEMO_WORKDIR $ws is not empty" >&2; exit 64; }
else
  ws=$(mktemp -d /tmp/courier-demo.XXXXXX)
fi
cd "$ws"

# Only 127.0.0.1 is ever contacted: no proxy may get in between.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1

stage=("$bin/courier-stage") deliver=("$bin/courier-deliver") inboxd=("$bin/courier-inboxd")
clients=(pilot-1 prod-1 prod-2)
daemon_pids=() httpd_pid="" current_step=""

# ---- presentation ----------------------------------------------------------------------------
if [[ -t 1 ]]; then B=$'\033[1m' D=$'\033[2m' N=$'\033[0m'; else B="" D="" N=""; fi
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
t_start=$(now_ms) t_step=0 timings=()
step() {   # step "N" "title" "one-line explanation"
  current_step="$1. $2"; t_step=$(now_ms)
  printf '\n%s%s. %s%s\n%s   %s%s\n' "$B" "$1" "$2" "$N" "$D" "$3" "$N"
}
took() {   # took "short name": ends a step with its elapsed time
  local ms=$(( $(now_ms) - t_step ))
  timings+=("$1 $ms ms")
  printf '%s   (%d ms)%s\n' "$D" "$ms" "$N"
}
say() { printf '   %s\n' "$*"; }
indent() { sed 's/^/   /'; }          # tool output, shifted under the step
latest() { cat "outbox/$1/latest.txt"; }

# ---- clean-up: daemons and the HTTP server go, the workspace stays ---------------------------
stop_all() {   # SIGTERM: each daemon finishes what it is applying and exits 0
  local pid rc bad=0
  for pid in "${daemon_pids[@]}" $httpd_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${daemon_pids[@]}"; do
    rc=0; wait "$pid" || rc=$?
    (( rc == 0 )) || { echo "demo: courier-inboxd pid $pid exited $rc after SIGTERM" >&2; bad=1; }
  done
  [[ -z $httpd_pid ]] || wait "$httpd_pid" 2>/dev/null || true
  (( bad )) || say "stopped ${#daemon_pids[@]} courier-inboxd daemons (SIGTERM, exit 0)${httpd_pid:+ and the vendor site}"
  daemon_pids=() httpd_pid=""
  return $bad
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all >/dev/null 2>&1 || true
  if (( rc != 0 )); then
    echo >&2
    echo "demo: FAILED (exit $rc) in step ${current_step:-0}. Workspace kept: $ws" >&2
    echo "demo: daemon logs: $ws/clients/*/daemon.log; HTTP log: $ws/vendor-site.log" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for_line() {   # wait_for_line FILE REGEX SECONDS
  local deadline=$(( $(now_ms) + $3 * 1000 ))
  until grep -Eq "$2" "$1" 2>/dev/null; do
    (( $(now_ms) < deadline )) || { echo "demo: no '$2' in $1 after $3 s:" >&2; cat "$1" >&2; return 1; }
    sleep 0.05
  done
}

printf '%sCourier demo%s: one staging server, three content types, three clients in two policy groups.\n' "$B" "$N"
printf '%sworkspace %s, programs from %s%s\n' "$D" "$ws" "$bin" "$N"

# ==============================================================================================
step 1 "The staging server gets a signing key" \
  "Ed25519; the secret stays on the stager, the .pub file is all a client needs to trust."
mkdir -p keys
"${stage[@]}" keygen --out keys/stage.key --comment "courier demo stager" | indent
took keygen

# ==============================================================================================
step 2 "Upstream publishes; one staging run packages all three content types" \
  "virus-defs: a folder of publisher revisions; ips-rules: a snapshot folder; phishing-urls: a vendor tarball over HTTP."
mkdir -p upstream/virus-defs vendor-site
cp -R "$root/Fixtures/upstream/virus-defs/." upstream/virus-defs/
cp -R "$root/Fixtures/upstream/ips-rules/20261121001" upstream/ips-rules
mkdir -p upstream/phishing-urls/feeds
cat > upstream/phishing-urls/domains.txt <<'EOF'
# Courier demo phishing feed: made-up names under reserved TLDs; they match nothing real.
login-secure-bank.example
account-verify-portal.test
parcel-redelivery-fee.invalid
EOF
cat > upstream/phishing-urls/feeds/urls.txt <<'EOF'
http://login-secure-bank.example/signin.php
https://account-verify-portal.test/session/renew
http://parcel-redelivery-fee.invalid/pay?id=1
EOF
publish_vendor_tarball() {   # the vendor's download: a tarball and its sha256sum file
  tar -C upstream/phishing-urls -czf vendor-site/.phishing-urls.tar.gz .
  mv vendor-site/.phishing-urls.tar.gz vendor-site/phishing-urls.tar.gz
  (cd vendor-site && sha256sum phishing-urls.tar.gz > phishing-urls.tar.gz.sha256)
}
publish_vendor_tarball
python3 "$helpers/httpd.py" vendor-site vendor-site.port vendor-site.log &
httpd_pid=$!
wait_for_line vendor-site.port '^[0-9]+$' 10
port=$(cat vendor-site.port)
cat > stage.toml <<EOF
# The staging server's configuration (docs/STAGE.md); relative paths are relative to this file.
outbox = "outbox"
key = "keys/stage.key"
state_dir = "stage-state"
package_lifetime = "30d"

[types.virus-defs]
source = "dir"                       # upstream/virus-defs/<revision>/: the newest one is staged
path = "upstream/virus-defs"
deltas = 3

[types.ips-rules]
source = "dir"
layout = "snapshot"                  # one folder: a new revision whenever its content changes
path = "upstream/ips-rules"

[types.phishing-urls]
source = "url"                       # downloaded, checked against the vendor's sha256sum, unpacked
url = "http://127.0.0.1:$port/phishing-urls.tar.gz"
checksum_url = "http://127.0.0.1:$port/phishing-urls.tar.gz.sha256"
EOF
say "upstream: virus-defs revisions $(ls upstream/virus-defs | paste -sd' ') (a new stager takes the newest), ips-rules folder, vendor site http://127.0.0.1:$port/"
say "\$ courier-stage run --config stage.toml --json > stage-run-1.json"
"${stage[@]}" run --config stage.toml --json > stage-run-1.json
python3 "$helpers/fleet.py" staged stage-run-1.json | indent
say "the vendor site saw: $(grep -v '^#' vendor-site.log | paste -sd',' | sed 's/,/, /g')"
took stage

# ==============================================================================================
step 3 "Three clients start courier-inboxd, each watching its own inbox" \
  "Each trusts the demo key only; what lands in the inbox is verified, applied atomically, or quarantined."
for c in "${clients[@]}"; do
  mkdir -p "clients/$c/trust" "clients/$c/inbox"
  cp keys/stage.key.pub "clients/$c/trust/"
  cat > "clients/$c/inboxd.toml" <<'EOF'
# A client's agent (docs/INBOXD.md); relative paths are relative to this file.
inbox = "inbox"
trust = "trust"
state_dir = "state"
store = "store"
quarantine = "quarantine"

[types.virus-defs]
keep = 2

[types.ips-rules]
keep = 2

[types.phishing-urls]
keep = 2
EOF
  "${inboxd[@]}" run --config "$ws/clients/$c/inboxd.toml" >>"clients/$c/daemon.log" 2>&1 &
  daemon_pids+=($!)
done
for i in "${!clients[@]}"; do
  c=${clients[$i]}
  wait_for_line "clients/$c/daemon.log" 'info: watching ' 20
  say "$(printf '%-8s pid %-7s %s' "$c" "${daemon_pids[$i]}" "$(grep -o 'watching .*' "clients/$c/daemon.log" | head -1 | sed "s|$ws/||")")"
done
took clients

# ==============================================================================================
pinned=$(latest virus-defs)
step 4 "courier-deliver pushes by policy: pilot takes the latest, production pins virus-defs" \
  "No client has a status.json yet, so each gets full packages; copies are atomic (dot-name, flushed to disk, then renamed)."
cat > policy.toml <<EOF
# Who gets what (docs/DELIVER.md). The pilot takes every new revision at once; production keeps
# virus-defs on the revision the pilot has vetted until someone moves that line.
[groups.pilot]
inboxes = ["clients/pilot-*/inbox"]
types = { virus-defs = "latest", ips-rules = "latest", phishing-urls = "latest" }

[groups.production]
inboxes = ["clients/prod-*/inbox"]
types = { virus-defs = $pinned, ips-rules = "latest", phishing-urls = "latest" }
EOF
say "policy.toml: pilot = clients/pilot-* on latest; production = clients/prod-* with virus-defs = $pinned"
say "\$ courier-deliver push --outbox outbox --trust keys/stage.key.pub --policy policy.toml --quiet"
"${deliver[@]}" push --outbox outbox --trust keys/stage.key.pub --policy policy.toml --quiet 2>&1 | sed "s|$ws/||g" | indent
expect() {   # the revisions each client must end up with, for fleet.py wait
  local c vd want=()
  for c in "${clients[@]}"; do
    if [[ $c == prod-* ]]; then vd=$pinned; else vd=$(latest virus-defs); fi
    want+=("clients/$c:virus-defs=$vd,ips-rules=$(latest ips-rules),phishing-urls=$(latest phishing-urls)")
  done
  printf '%s\n' "${want[@]}"
}
say "waiting for the daemons to apply (status.json of each client):"
mapfile -t want < <(expect)
python3 "$helpers/fleet.py" wait --timeout 60 "${want[@]}" | indent
took "push+apply"

# ==============================================================================================
step 5 "Upstream publishes again; the stager builds deltas; clients take them" \
  "A delta carries only what changed — a changed file as a patch against its old version where that is smaller — and the digest of the result's complete file list, which each client recomputes and checks."
prev=$(ls upstream/virus-defs | sort -n | tail -1)
next=$(( prev + 1 ))
cp -R "upstream/virus-defs/$prev" "upstream/virus-defs/.$next"
for i in 0 1 2; do
  printf 'Courier.Test.Sig-daily2-%d:0:*:%s\n' "$i" "$(printf 'demo-%s-%d' "$next" "$i" | sha256sum | cut -c1-48)"
done >> "upstream/virus-defs/.$next/daily.ndb"
printf '%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "upstream/virus-defs/.$next/freshness.txt"
printf 'Courier.Test.Hotfix-0:0:*:%s\n' "$(printf 'hotfix-%s' "$next" | sha256sum | cut -c1-48)" \
  > "upstream/virus-defs/.$next/hotfix.ndb"
mv "upstream/virus-defs/.$next" "upstream/virus-defs/$next"      # publishers rename into place
say "virus-defs $next: daily.ndb +3 signatures, freshness.txt updated, hotfix.ndb new"
sed -i 's/\(sid:9000007; \)rev:1;/\1rev:2;/' upstream/ips-rules/rules/courier-test.rules
printf 'alert tcp any any -> $HOME_NET 1400 (msg:"COURIER TEST rule 400"; flow:established; content:"x00400"; sid:9000400; rev:1;)\n' \
  >> upstream/ips-rules/rules/courier-test.rules
say "ips-rules folder: rule sid 9000007 revised, rule sid 9000400 added (one file changed by two lines: the delta carries a patch of it, not the file)"
cat > upstream/phishing-urls/feeds/campaign-fake-invoice.txt <<'EOF'
https://invoice-overdue-notice.example/view?doc=8812
http://secure-payments-update.test/invoice.html
EOF
publish_vendor_tarball
say "phishing-urls tarball: feeds/campaign-fake-invoice.txt new"
say "\$ courier-stage run --config stage.toml --json > stage-run-2.json"
"${stage[@]}" run --config stage.toml --json > stage-run-2.json
say "\$ courier-stage list --outbox outbox      # * = latest; a full package, and a delta where it pays"
"${stage[@]}" list --outbox outbox | sed '1d;/^$/d' | indent
seen=$(grep -c 'applied ' clients/pilot-1/daemon.log || true)
say "\$ courier-deliver push --outbox outbox --trust keys/stage.key.pub --policy policy.toml"
"${deliver[@]}" push --outbox outbox --trust keys/stage.key.pub --policy policy.toml 2>&1 | sed "s|$ws/||g" | indent
say "waiting for the daemons to apply (status.json):"
mapfile -t want < <(expect)
python3 "$helpers/fleet.py" wait --timeout 60 "${want[@]}" | indent
say "pilot-1's daemon log:"
grep -o 'applied .* ms$' clients/pilot-1/daemon.log | tail -n +$(( seen + 1 )) | indent
took "publish+stage+push+apply"

# ==============================================================================================
step 6 "The fleet report: who holds what, and who is behind" \
  "Read from each client's status.json; production is behind on virus-defs by policy, not by accident."
say "\$ courier-deliver report --inbox 'clients/*/inbox' --outbox outbox"
"${deliver[@]}" report --inbox 'clients/*/inbox' --outbox outbox 2>&1 | sed "s|$ws/||g" | indent
took report

echo
stop_all
printf '%sDone in %d ms%s (%s).\n' "$B" $(( $(now_ms) - t_start )) "$N" "$(IFS=,; echo "${timings[*]}" | sed 's/,/, /g')"
echo "Workspace (kept): $ws"
echo "   stage.toml, policy.toml, outbox/, upstream/, clients/<name>/{inboxd.toml,store,state,daemon.log}"
