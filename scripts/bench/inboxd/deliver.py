#!/usr/bin/env python3
"""Delivery helper for scripts/bench/inboxd.sh: renames files on request and reports the moment
of each rename, so that the latency figure starts at the rename itself rather than at the start
of an `mv` process (a few milliseconds of fork and exec on a small machine).

Reads lines "SRC<TAB>DST" on stdin; for each, prints the CLOCK_REALTIME nanoseconds taken just
before rename(SRC, DST), or "error: ..." when the rename fails. Runs until stdin closes.
"""
import os
import sys
import time

for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        continue
    try:
        src, dst = line.split("\t")
        t = time.time_ns()
        os.rename(src, dst)
        print(t, flush=True)
    except (ValueError, OSError) as e:
        print(f"error: {e}", flush=True)
