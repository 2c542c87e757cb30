#!/usr/bin/env python3
"""Simulated pulling clients against a real web server serving a Courier outbox (issue #16).

    pullsim.py --url http://127.0.0.1:PORT --clients 10000 --concurrency 200 \
               --access-log /path/access.log --json out.json

Each simulated client is what `courier-pull run` does on one machine, reduced to its HTTP:
a conditional GET of index.json (If-None-Match with the ETag it kept from its last poll), and,
when the index changed, the package its state needs: the delta from the revision it holds, or
the full package (no revision, or one the outbox keeps no delta from). Every client opens its
own TCP connection (a client is a machine; its two or three requests share one keep-alive
connection), `concurrency` of them at a time.

The fleet is drawn from the outbox itself: for each type the newest revision is the target;
`--spread` gives the share of clients on each older state, as `latest-1:0.8,latest-2:0.1,none:0.05`
(the rest is already up to date). Phases:

  poll      every client polls with the ETag of the current index: 304 Not Modified, no body.
  publish   every client polls with the ETag of the previous index (it changed): 200, then its
            download(s); every byte is counted and each package's size and SHA-256 are checked
            against index.json (a mismatch fails the run).

The server's own account is read from its access log (nginx `log_format` with $status,
$bytes_sent, $body_bytes_sent), so the figures are what the mirror served, not what the
simulator thinks it asked for. Prints a JSON report (and writes it with --json).
"""
import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import time
import urllib.parse


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="base URL of the outbox, e.g. http://127.0.0.1:18080")
    p.add_argument("--clients", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--spread", default="latest-1:0.80,latest-2:0.10,none:0.05",
                   help="share of clients per state; the remainder is up to date")
    p.add_argument("--old-etag", default='"courier-sim-old"', help="ETag the clients kept before the publish")
    p.add_argument("--access-log", help="nginx access log to read the server's account from")
    p.add_argument("--server-pid", type=int, help="nginx master: its workers' CPU time is measured per phase")
    p.add_argument("--phases", default="poll,publish")
    p.add_argument("--seed", type=int, default=20261129)
    p.add_argument("--json", help="also write the report here")
    return p.parse_args()


class Client:
    """One HTTP/1.1 keep-alive connection, as one machine's pull run would hold."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def __aenter__(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc):
        if self.writer:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except Exception:
                pass

    async def get(self, path, headers=None, sink=None):
        """GET path; returns (status, headers, body bytes count). The body is fed to `sink`."""
        h = {"Host": f"{self.host}:{self.port}", "User-Agent": "courier-pullsim", "Connection": "keep-alive"}
        h.update(headers or {})
        req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.writer.write(req.encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        n = 0
        if status not in (204, 304) and "content-length" in hdrs:
            left = int(hdrs["content-length"])
            while left:
                chunk = await self.reader.read(min(left, 1 << 20))
                if not chunk:
                    raise IOError(f"{path}: connection closed with {left} bytes to go")
                left -= len(chunk)
                n += len(chunk)
                if sink:
                    sink(chunk)
        elif status not in (204, 304):
            raise IOError(f"{path}: response without Content-Length (status {status})")
        return status, hdrs, n


def plan_fleet(index, clients, spread, rng):
    """Each client's installed revision per type (None: nothing installed)."""
    shares = []
    for part in spread.split(","):
        k, v = part.split(":")
        shares.append((k.strip(), float(v)))
    if sum(v for _, v in shares) > 1.0 + 1e-9:
        sys.exit("pullsim: --spread shares add up to more than 1")
    fleet = []
    for _ in range(clients):
        state = {}
        for t, info in index["types"].items():
            revs = sorted(r["revision"] for r in info["revisions"])
            x, acc, chosen = rng.random(), 0.0, "latest"
            for k, v in shares:
                acc += v
                if x < acc:
                    chosen = k
                    break
            if chosen == "none":
                state[t] = None
            elif chosen.startswith("latest-"):
                back = int(chosen.split("-")[1])
                state[t] = revs[-1 - back] if back < len(revs) else None
            else:
                state[t] = revs[-1]
        fleet.append(state)
    return fleet


def choose(index, t, installed):
    """What `select`/pull would send: None (up to date), else the package entry (delta if any)."""
    info = index["types"][t]
    latest = info["latest"]
    if installed == latest:
        return None
    rev = next(r for r in info["revisions"] if r["revision"] == latest)
    full = next(p for p in rev["packages"] if p["kind"] == "full")
    if installed is not None:
        for p in rev["packages"]:
            if p["kind"] == "delta" and p.get("base") == installed and p["size"] < full["size"]:
                return p
    return full


async def run_phase(name, args, index, fleet, etag_current):
    u = urllib.parse.urlsplit(args.url)
    host, port = u.hostname, u.port or 80
    base = u.path.rstrip("/")
    sem = asyncio.Semaphore(args.concurrency)
    stats = {"clients": len(fleet), "requests": 0, "status": {}, "body_bytes": 0, "downloads": {"full": 0, "delta": 0},
             "errors": 0, "latency_ms": []}
    first_error = []

    async def one(state):
        async with sem:
            t0 = time.perf_counter()
            try:
                async with Client(host, port) as c:
                    etag = etag_current if name == "poll" else args.old_etag
                    st, _, n = await c.get(base + "/index.json", {"If-None-Match": etag})
                    stats["requests"] += 1
                    stats["status"][st] = stats["status"].get(st, 0) + 1
                    stats["body_bytes"] += n
                    if st == 304:
                        return
                    if st != 200:
                        raise IOError(f"index.json: HTTP {st}")
                    for t, installed in state.items():
                        p = choose(index, t, installed)
                        if p is None:
                            continue
                        h = hashlib.sha256()
                        st, _, n = await c.get(base + "/" + p["file"], sink=h.update)
                        stats["requests"] += 1
                        stats["status"][st] = stats["status"].get(st, 0) + 1
                        stats["body_bytes"] += n
                        if st != 200 or n != p["size"] or h.hexdigest() != p["sha256"]:
                            raise IOError(f"{p['file']}: HTTP {st}, {n} bytes, sha256 {h.hexdigest()[:16]}… "
                                          f"(index: {p['size']} bytes, {p['sha256'][:16]}…)")
                        stats["downloads"][p["kind"]] += 1
            except Exception as e:  # counted and the first one reported: the run fails on any
                stats["errors"] += 1
                if not first_error:
                    first_error.append(repr(e))
            finally:
                stats["latency_ms"].append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(s) for s in fleet))
    wall = time.perf_counter() - t0
    lat = sorted(stats.pop("latency_ms"))
    stats.update(wall_s=round(wall, 3), requests_per_s=round(stats["requests"] / wall, 1),
                 client_ms_median=round(lat[len(lat) // 2], 2), client_ms_p99=round(lat[int(len(lat) * 0.99)], 2),
                 first_error=first_error[0] if first_error else None)
    stats["status"] = {str(k): v for k, v in sorted(stats["status"].items())}
    return stats


def server_account(path, start):
    """Requests, statuses and bytes the server logged from byte offset `start` of its access log."""
    acc = {"requests": 0, "status": {}, "bytes_sent": 0, "body_bytes_sent": 0}
    with open(path, "rb") as f:
        f.seek(start)
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            st, sent, body = parts[0].decode(), int(parts[1]), int(parts[2])
            acc["requests"] += 1
            acc["status"][st] = acc["status"].get(st, 0) + 1
            acc["bytes_sent"] += sent
            acc["body_bytes_sent"] += body
    return acc


def server_cpu_seconds(master):
    """User+system CPU seconds of the master and its worker processes so far (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [master]
    try:
        with open(f"/proc/{master}/task/{master}/children") as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime, stime (fields 14 and 15)
        except OSError:
            pass
    return total / ticks


async def main():
    args = parse_args()
    rng = random.Random(args.seed)
    u = urllib.parse.urlsplit(args.url)
    async with Client(u.hostname, u.port or 80) as c:
        body = bytearray()
        st, hdrs, _ = await c.get(u.path.rstrip("/") + "/index.json", sink=body.extend)
        if st != 200:
            sys.exit(f"pullsim: {args.url}/index.json: HTTP {st}")
        etag = hdrs.get("etag")
        if not etag:
            sys.exit("pullsim: the server sent no ETag for index.json (conditional GETs impossible)")
    index = json.loads(body)
    fleet = plan_fleet(index, args.clients, args.spread, rng)
    report = {"url": args.url, "clients": args.clients, "concurrency": args.concurrency, "spread": args.spread,
              "index_bytes": len(body), "types": {}, "phases": {}}
    for t, info in index["types"].items():
        rev = next(r for r in info["revisions"] if r["revision"] == info["latest"])
        report["types"][t] = {"latest": info["latest"],
                              "packages": {p["file"]: p["size"] for p in rev["packages"]}}
    failed = False
    for name in args.phases.split(","):
        start = 0
        if args.access_log:
            with open(args.access_log, "rb") as f:
                start = f.seek(0, 2)
        cpu0 = server_cpu_seconds(args.server_pid) if args.server_pid else None
        ph = await run_phase(name, args, index, fleet, etag)
        if cpu0 is not None:
            await asyncio.sleep(0.2)
            cpu = server_cpu_seconds(args.server_pid) - cpu0
            ph["server_cpu_s"] = round(cpu, 2)
            # What one core of nginx would serve at this mix if the clients were not the limit.
            ph["requests_per_server_cpu_s"] = round(ph["requests"] / cpu, 1) if cpu > 0 else None
        if args.access_log:
            await asyncio.sleep(0.2)  # nginx writes its log line after the response
            ph["server"] = server_account(args.access_log, start)
            ph["server"]["requests_per_s"] = round(ph["server"]["requests"] / ph["wall_s"], 1)
        report["phases"][name] = ph
        failed |= ph["errors"] > 0
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
