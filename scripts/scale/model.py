#!/usr/bin/env python3
"""docs/SCALE.md's capacity model, computed from a measured `make scale-sim` report.

    python3 scripts/scale/model.py .build/pullsim/report.json [--publishes 4] [--poll 3600] ...

Measured inputs (from the report): each type's full and delta package sizes, the size of
index.json, the bytes of a 304 answer and of a 200 answer's headers, and nginx's requests per
CPU-second in both phases. Assumptions (flags, printed with the tables): publishes per day, the
clients' poll interval, the share of clients that need a full package at a publish (new,
reinstalled or behind every kept delta), clients per site relay, site relays per regional relay.

Every client is assumed to follow every publish (one delta from the revision before); pulls are
spread evenly over the poll interval by the pull copier's splay, so the hour after a publish
carries every client's index download and package(s).
"""
import argparse
import json
import math


def human(n):
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000.0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report")
    p.add_argument("--publishes", type=float, default=4, help="publishes per day per type")
    p.add_argument("--poll", type=float, default=3600, help="seconds between a client's polls")
    p.add_argument("--full-share", type=float, default=0.01, help="share of clients needing a full package per publish")
    p.add_argument("--per-relay", type=int, default=1000, help="clients per site relay")
    p.add_argument("--per-region", type=int, default=100, help="site relays per regional relay")
    p.add_argument("--fleets", default="1000,100000,1000000")
    a = p.parse_args()
    r = json.load(open(a.report))
    poll, pub = r["phases"]["poll"], r["phases"]["publish"]
    b304 = poll["server"]["bytes_sent"] / poll["server"]["requests"]
    idx = r["index_bytes"]
    # Each type: full and the delta from the revision before (the smallest delta of the latest).
    full = delta = 0
    for t, info in r["types"].items():
        sizes = info["packages"]
        f = [s for n, s in sizes.items() if "_from_" not in n]
        d = [s for n, s in sizes.items() if "_from_" in n]
        full += f[0]
        delta += min(d) if d else f[0]
    hdr = b304  # a 200's headers are about a 304's size
    polls_day = 86400 / a.poll
    rps_cpu = min(poll["requests_per_server_cpu_s"], pub["requests_per_server_cpu_s"])
    ntypes = len(r["types"])
    # Per client per day.
    c_bytes = (polls_day - a.publishes) * b304 + a.publishes * (idx + hdr) \
        + a.publishes * ((1 - a.full_share) * delta + a.full_share * full + ntypes * hdr)
    c_reqs = polls_day + a.publishes * ntypes
    # A relay mirrors every published revision: the full package and the deltas it keeps.
    mirror_pub = sum(sum(i["packages"].values()) for i in r["types"].values()) + idx
    print(f"Measured (report {a.report}): {ntypes} types; per publish a client downloads {human(delta)} "
          f"(delta) or {human(full)} (full); index.json {human(idx)}; a 304 answer {b304:.0f} B; "
          f"nginx {rps_cpu:,.0f} requests per CPU-second (the lower of the two phases); a relay mirrors "
          f"{human(mirror_pub)} per publish.")
    print(f"Assumed: {a.publishes:g} publishes a day, a poll every {a.poll:g} s, {a.full_share:.0%} of clients "
          f"needing a full package at a publish, {a.per_relay} clients per site relay, {a.per_region} site "
          f"relays per regional relay.\n")
    print(f"Per client: {human(c_bytes)} and {c_reqs:.0f} requests a day.\n")
    print("| clients | direct: mirror bytes/day | direct: peak req/s (the poll interval after a publish) | direct: peak Mbit/s | nginx cores at peak | site relays | regional relays | stager bytes/day (relays) | per site relay bytes/day served |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in (int(x) for x in a.fleets.split(",")):
        day = n * c_bytes
        # The hour after a publish: every client polls once (its index changed: a 200) and downloads
        # one package per type.
        peak_reqs = n * (1 + ntypes) / a.poll
        peak_bytes = n * ((1 - a.full_share) * delta + a.full_share * full + idx) / a.poll
        sites = math.ceil(n / a.per_relay)
        regions = math.ceil(sites / a.per_region) if sites > a.per_region else 0
        upstream_pulls = regions if regions else sites
        stager = upstream_pulls * a.publishes * mirror_pub + upstream_pulls * polls_day * b304
        per_site = min(n, a.per_relay) * c_bytes
        print(f"| {n:,} | {human(day)} | {peak_reqs:,.1f} | {peak_bytes * 8 / 1e6:,.1f} | "
              f"{peak_reqs / rps_cpu:.3f} | {sites:,} | {regions:,} | {human(stager)} | {human(per_site)} |")


if __name__ == "__main__":
    main()
