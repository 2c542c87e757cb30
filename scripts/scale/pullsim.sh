#!/usr/bin/env bash
# make scale-sim: thousands of simulated pulling clients against nginx serving a real outbox
# (issue #16, docs/SCALE.md checks its capacity model against this run).
#
#   bash scripts/scale/pullsim.sh [BIN_DIR]        BIN_DIR holds courier-stage (default .build/release)
#
# 1. courier-stage stages a realistic feed into an outbox: `sigdb`, one ClamAV-like signature
#    database of SIM_DB_MIB MiB (text lines of hex patterns) that changes by 0.5 % of its lines
#    and grows by 0.2 % per revision, and `rules`, 200 small rule files of which 1 % change — three
#    revisions each, so the newest has deltas from the two before it.
# 2. nginx (the OS package) serves it with scripts/nginx/courier-outbox.conf as shipped, only
#    `listen` and `root` replaced, SIM_WORKERS worker processes, an access log of status and bytes.
# 3. scripts/scale/pullsim.py runs SIM_CLIENTS clients, SIM_CONCURRENCY at a time, each on its own
#    TCP connection: a phase where nothing changed (every poll a 304) and a phase just after a
#    publish (every poll a 200, then each client's delta or full package, checked by size and
#    SHA-256 against index.json). Spread: 80 % one revision behind, 10 % two behind, 5 % with
#    nothing installed, 5 % up to date.
# Prints the report (JSON) and a summary; writes both to SIM_OUT (default .build/pullsim/).
# Environment: SIM_CLIENTS (10000), SIM_CONCURRENCY (200), SIM_DB_MIB (16), SIM_WORKERS (2),
# SIM_PORT (18090).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$root/.build/release}" && pwd)
[[ -x $bin/courier-stage ]] || { echo "pullsim: $bin/courier-stage not found (make release first)" >&2; exit 64; }
command -v nginx >/dev/null || { echo "pullsim: nginx is missing (apt-get install nginx)" >&2; exit 69; }
CLIENTS=${SIM_CLIENTS:-10000} CONC=${SIM_CONCURRENCY:-200} DB_MIB=${SIM_DB_MIB:-16}
WORKERS=${SIM_WORKERS:-2} PORT=${SIM_PORT:-18090}
OUT=${SIM_OUT:-$root/.build/pullsim}
mkdir -p "$OUT"
W=$(mktemp -d "${TMPDIR:-/tmp}/courier-pullsim.XXXXXX")
chmod 755 "$W"   # nginx's workers run as www-data
ngx_pid=""
cleanup() { [[ -n $ngx_pid ]] && kill "$ngx_pid" 2>/dev/null; wait 2>/dev/null; rm -rf -- "$W"; }
trap cleanup EXIT
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
say() { echo "pullsim: [${SECONDS}s] $*" >&2; }

say "staging 3 revisions of sigdb ($DB_MIB MiB) and rules (200 files) into $W/outbox"
"$bin/courier-stage" keygen --out "$W/stage.key" >/dev/null
mkdir -p "$W/up/sigdb" "$W/up/rules" "$W/state"
cat > "$W/stage.toml" <<EOF
outbox = "$W/outbox"
key = "$W/stage.key"
state_dir = "$W/state"
[types.sigdb]
source = "dir"
layout = "snapshot"
path = "$W/up/sigdb"
keep_revisions = 3
deltas = 2
[types.rules]
source = "dir"
layout = "snapshot"
path = "$W/up/rules"
keep_revisions = 3
deltas = 2
EOF
for rev in 1 2 3; do
  python3 - "$W/up" "$DB_MIB" "$rev" <<'PY'
import os, random, sys
up, db_mib, rev = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(7)
def line(r):
    n = r.randrange(32, 161)
    return "%s.%s-%07d:%d:*:%0*x\n" % (r.choice(["Win", "Unix", "Doc", "Html"]), r.choice(["Trojan", "Exploit", "Phishing"]),
        r.randrange(10**7), r.randrange(11), n, r.getrandbits(4 * n))
lines = []
size = 0
while size < db_mib << 20:
    lines.append(line(r)); size += len(lines[-1])
files = {f"r{i:03d}.rules": [line(r) for _ in range(30)] for i in range(200)}
for k in range(2, rev + 1):   # each later revision: 0.5 % of lines replaced, 0.2 % appended
    c = random.Random(1000 + k)
    for _ in range(len(lines) // 200): lines[c.randrange(len(lines))] = line(c)
    lines += [line(c) for _ in range(len(lines) // 500)]
    for name in c.sample(sorted(files), 2): files[name][c.randrange(30)] = line(c)
with open(f"{up}/sigdb/main.ndb", "w") as f: f.write("".join(lines))
for name, ls in files.items():
    with open(f"{up}/rules/{name}", "w") as f: f.write("".join(ls))
PY
  "$bin/courier-stage" run --config "$W/stage.toml" >/dev/null 2>"$W/stage-$rev.log" \
    || { cat "$W/stage-$rev.log" >&2; echo "pullsim: courier-stage run $rev failed" >&2; exit 1; }
  sleep 1.1   # revisions are YYYYMMDDNNN: distinct runs, distinct numbers either way
done

say "starting nginx ($WORKERS workers) on 127.0.0.1:$PORT"
mkdir -p "$W/ngx/tmp"
sed -e "s#listen 8080;#listen 127.0.0.1:$PORT;#" -e '/listen \[::\]/d' \
    -e "s#root /var/lib/courier/outbox;#root $W/outbox;#" "$root/scripts/nginx/courier-outbox.conf" > "$W/ngx/site.conf"
cat > "$W/ngx/nginx.conf" <<EOF
daemon off;
pid $W/ngx/nginx.pid;
error_log $W/ngx/error.log;
worker_processes $WORKERS;
worker_rlimit_nofile 65536;
events { worker_connections 8192; }
http {
    log_format sim '\$status \$bytes_sent \$body_bytes_sent \$request_time';
    access_log $W/ngx/access.log sim;
    client_body_temp_path $W/ngx/tmp; proxy_temp_path $W/ngx/tmp; fastcgi_temp_path $W/ngx/tmp;
    uwsgi_temp_path $W/ngx/tmp; scgi_temp_path $W/ngx/tmp;
    keepalive_requests 1000;
    include $W/ngx/site.conf;
}
EOF
nginx -t -c "$W/ngx/nginx.conf" -p "$W/ngx" 2>"$W/ngx/t.log" || { cat "$W/ngx/t.log" >&2; exit 1; }
nginx -c "$W/ngx/nginx.conf" -p "$W/ngx" &
ngx_pid=$!
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/index.json" 2>/dev/null && break; sleep 0.1; done
ulimit -n 65536 2>/dev/null || true

say "simulating $CLIENTS clients, $CONC at a time"
python3 "$root/scripts/scale/pullsim.py" --url "http://127.0.0.1:$PORT" --clients "$CLIENTS" \
    --concurrency "$CONC" --access-log "$W/ngx/access.log" --server-pid "$ngx_pid" --json "$OUT/report.json" > /dev/null
rc=$?
python3 - "$OUT/report.json" "$(nproc)" "$WORKERS" <<'PY' | tee "$OUT/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"load average at the end {open('/proc/loadavg').read().split()[:3]}")
print(f"pullsim: {r['clients']} clients, {r['concurrency']} at a time, nginx {sys.argv[3]} workers, {sys.argv[2]} cores shared with the simulator")
print(f"index.json: {r['index_bytes']} bytes")
for t, i in sorted(r["types"].items()):
    print(f"  {t} latest {i['latest']}: " + ", ".join(f"{f.split('/')[-1]} {s:,} B" for f, s in sorted(i["packages"].items())))
for name, p in r["phases"].items():
    s = p.get("server", {})
    print(f"{name}: {p['requests']} requests in {p['wall_s']} s = {p['requests_per_s']}/s (server logged {s.get('requests')} "
          f"= {s.get('requests_per_s')}/s, statuses {s.get('status')}), bytes sent {s.get('bytes_sent', 0):,} "
          f"(bodies {s.get('body_bytes_sent', 0):,}); downloads {p['downloads']}; client time median "
          f"{p['client_ms_median']} ms, p99 {p['client_ms_p99']} ms; nginx CPU {p.get('server_cpu_s')} s "
          f"= {p.get('requests_per_server_cpu_s')} requests per CPU-second; errors {p['errors']}"
          + (f" (first: {p['first_error']})" if p['first_error'] else ""))
PY
exit $rc
