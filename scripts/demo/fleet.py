#!/usr/bin/env python3
"""Small read-only helpers for `make demo` (scripts/demo.sh); nothing here changes a file.

  fleet.py staged RUN_JSON
      one line per content type from `courier-stage run --json`: what was published.
  fleet.py wait --timeout SECONDS CLIENT_DIR:TYPE=REV[,TYPE=REV…] …
      polls each client's state/status.json (the schema of docs/INBOXD.md) until every listed
      type has the listed revision installed; prints one line per client. Fails at once when a
      client quarantined something (printing the reason), and after the timeout with what each
      client holds. Exit 0 when all are there, 1 otherwise.
"""
import glob, json, os, sys, time


def kib(n):
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def staged(path):
    with open(path) as f:
        report = json.load(f)
    for t in report["types"]:
        line = f"{t['type']:<14} {t['status']:<10} {t.get('revision', '-')}"
        if t["status"] == "published":
            line += f"  full {kib(t['full_bytes'])}"
            for d in t.get("deltas", []):
                line += f", delta from {d['base']} {kib(d['bytes'])}"
            if t.get("downloaded_bytes"):
                line += f"  (downloaded {kib(t['downloaded_bytes'])})"
        else:
            line += f"  ({t.get('detail', '')})"
        print(line)


def read_status(client):
    try:
        with open(os.path.join(client, "state", "status.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None  # not written yet (the daemon writes it atomically, so never half a file)


def wait(args):
    timeout = 60.0
    if args[:1] == ["--timeout"]:
        timeout, args = float(args[1]), args[2:]
    wanted = {}
    for spec in args:
        client, _, pairs = spec.partition(":")
        wanted[client] = {t: int(r) for t, _, r in (p.partition("=") for p in pairs.split(",") if p)}
    deadline = time.monotonic() + timeout
    while True:
        missing = []
        for client, types in wanted.items():
            for reason in sorted(glob.glob(os.path.join(client, "quarantine", "*.reason.json"))):
                with open(reason) as f:
                    r = json.load(f)
                print(f"{os.path.basename(client)} quarantined {r.get('package')}: {r.get('reason')}", file=sys.stderr)
                return 1
            st = read_status(client) or {"types": {}}
            for t, rev in types.items():
                if st["types"].get(t, {}).get("installed") != rev:
                    missing.append((client, t, rev, st["types"].get(t, {})))
        if not missing:
            break
        if time.monotonic() > deadline:
            for client, t, rev, have in missing:
                print(f"{os.path.basename(client)}: {t} wanted {rev}, status says {json.dumps(have, sort_keys=True)}",
                      file=sys.stderr)
            return 1
        time.sleep(0.05)
    for client, types in wanted.items():
        st = read_status(client)
        cells = "  ".join(f"{t} {st['types'][t]['installed']}" for t in sorted(types))
        print(f"{os.path.basename(client):<10} {cells}")
    return 0


def main(argv):
    if argv[:1] == ["staged"] and len(argv) == 2:
        staged(argv[1])
        return 0
    if argv[:1] == ["wait"]:
        return wait(argv[1:])
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
