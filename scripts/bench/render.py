#!/usr/bin/env python3
"""Renders the results of the benchmark scripts (scripts/bench/lib.sh, `result`).

    render.py facts --workdir DIR [--repo DIR] [--bin DIR]   machine facts as JSON (stdout)
    render.py table --tsv FILE|-                             the one table, for a terminal
    render.py doc --tsv FILE --facts FILE [--cmds FILE] [--notes FILE] [--note TEXT]…
                  [--invocation TEXT] --out FILE             docs/BENCHMARKS.md

A result line is tab-separated: bench, name, ours, peer, unit, ratio, goal, met. `met` is yes,
no, - (no goal) or FAILED (run-all.sh's line for a script that failed). Lines starting with #
are ignored. Only the standard library: no pip install needed.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

FIELDS = ["bench", "name", "ours", "peer", "unit", "ratio", "goal", "met"]
HEADERS = ["bench", "figure", "ours", "peer", "unit", "ratio", "goal", "met"]


def read_rows(path):
    f = sys.stdin if path == "-" else open(path, encoding="utf-8")
    rows = []
    with f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) < len(FIELDS):   # a malformed line is shown, not dropped
                parts = [parts[0], "malformed result line: " + " | ".join(parts[1:])] + ["-"] * 5 + ["FAILED"]
            rows.append(dict(zip(FIELDS, parts[: len(FIELDS)])))
    return rows


def summary(rows):
    goals = [r for r in rows if r["met"] in ("yes", "no")]
    met = sum(1 for r in goals if r["met"] == "yes")
    failed = sorted({r["bench"] for r in rows if r["met"] == "FAILED"})
    s = f"{len(rows)} figures; {len(goals)} with a goal: {met} met, {len(goals) - met} not met"
    if failed:
        s += f"; FAILED: {', '.join(failed)}"
    return s


def cmd_table(args):
    rows = read_rows(args.tsv)
    if not rows:
        print("(no results)")
        return 0
    cells = [HEADERS] + [[r[k] for k in FIELDS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    right = {2, 3, 5}   # numbers
    sep = "  "
    for n, c in enumerate(cells):
        line = sep.join(c[i].rjust(widths[i]) if i in right else c[i].ljust(widths[i]) for i in range(len(c)))
        print(line.rstrip())
        if n == 0:
            print(sep.join("-" * w for w in widths))
    print()
    print(summary(rows))
    return 0


def run(cmd, **kw):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
        return (p.stdout + p.stderr).strip() if p.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    m = re.search(r"Model name:\s*(.+)", run(["lscpu"]))
    return m.group(1).strip() if m else platform.processor() or "unknown"


def mem_total():
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1048576:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def os_name():
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def file_system(path):
    out = run(["df", "-PT", path]).splitlines()
    if len(out) >= 2:
        fields = out[1].split()
        return f"{fields[1]} ({fields[0]}, mounted on {fields[-1]})"
    return "unknown"


def cmd_facts(args):
    cores_online = os.cpu_count() or 0
    try:
        cores_usable = len(os.sched_getaffinity(0))
    except AttributeError:
        cores_usable = cores_online
    swift = next((l for l in run(["swift", "--version"]).splitlines() if "Swift version" in l), "not found")
    commit = run(["git", "-C", args.repo, "rev-parse", "--short", "HEAD"]) if args.repo else ""
    if commit and run(["git", "-C", args.repo, "status", "--porcelain", "--untracked-files=no"]):
        commit += " + uncommitted changes"
    facts = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": f"{cores_usable} usable" + (f" of {cores_online}" if cores_online != cores_usable else ""),
        "ram": mem_total(),
        "os": os_name(),
        "kernel": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "filesystem": file_system(args.workdir),
        "swift": swift,
        "commit": commit or "unknown",
        "binaries": args.bin or "",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    json.dump(facts, sys.stdout, indent=1)
    print()
    return 0


def md(s):
    return s.replace("|", "\\|")


def cmd_doc(args):
    rows = read_rows(args.tsv)
    with open(args.facts, encoding="utf-8") as f:
        facts = json.load(f)
    cmds = {}
    if args.cmds and os.path.exists(args.cmds):
        with open(args.cmds, encoding="utf-8") as f:
            for line in f:
                bench, _, text = line.rstrip("\n").partition("\t")
                if text and text not in cmds.setdefault(bench, []):
                    cmds[bench].append(text)
    notes = ""
    if args.notes and os.path.exists(args.notes):
        with open(args.notes, encoding="utf-8") as f:
            notes = f.read().strip()

    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("<!-- Generated by `make bench` (scripts/bench/run-all.sh → scripts/bench/render.py). Do not edit")
    w("     by hand: the notes come from scripts/bench/NOTES.md, the figures from scripts/bench/*.sh. -->")
    w("")
    w(f"Figures of {facts.get('date', '?')}, from `{args.invocation}`. Every figure is a **median** of")
    w("several runs; each peer ran in the same run as ours, alternating with it, on the same input.")
    w("**ratio** is how many times better ours is (peer time / our time, peer size / our size).")
    w("A goal not met is shown as not met.")
    for n in args.note or []:
        w("")
        w(f"> {n}")
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    for key, label in [("date", "date"), ("cpu", "CPU"), ("cores", "cores"), ("ram", "RAM"), ("os", "OS"),
                       ("kernel", "kernel"), ("filesystem", "file system of the workspaces (TMPDIR)"),
                       ("swift", "Swift"), ("commit", "Courier commit"), ("binaries", "binaries"),
                       ("load", "load average at the start (1, 5, 15 min)")]:
        if facts.get(key):
            w(f"| {label} | {md(str(facts[key]))} |")
    w("")
    w("The machine is shared: other work may have run at the same time. Medians and alternating")
    w("runs keep that fair between ours and the peer, not free of noise.")
    w("")
    w("## Results")
    w("")
    w("| " + " | ".join(HEADERS) + " |")
    w("|" + "|".join(["---", "---", "--:", "--:", "---", "--:", "---", "---"]) + "|")
    for r in rows:
        cells = [r[k] for k in FIELDS]
        m = r["met"]
        cells[-1] = "**no**" if m == "no" else ("**FAILED**" if m == "FAILED" else m)
        w("| " + " | ".join(md(c) for c in cells) + " |")
    w("")
    w(summary(rows) + ".")
    w("")
    w("## Commands")
    w("")
    w("```sh")
    w(f"{args.invocation}")
    w("```")
    if cmds:
        w("")
        w("What each benchmark compared, and the settings of this run:")
        w("")
        for bench in sorted(cmds):
            w(f"- **{bench}**")
            settings = [c.split(":", 1)[1].strip() for c in cmds[bench] if c.startswith("settings:")]
            if settings:
                w(f"  - settings: `{' '.join(settings)}`")
            for c in cmds[bench]:
                if c.startswith("settings:"):
                    continue
                m = re.match(r"^([\w ()/.+-]{1,40}):\s+(.*)$", c)
                w(f"  - {m.group(1)}: `{m.group(2)}`" if m and "`" not in c else f"  - {c}")
    w("")
    if notes:
        w("## Notes")
        w("")
        # NOTES.md may start with its own heading: drop it, the section has one.
        # and the HTML comments addressed to its editors.
        notes = re.sub(r"<!--.*?-->\n?", "", notes, flags=re.S)
        lines = notes.splitlines()
        if lines and lines[0].startswith("# "):
            lines = lines[1:]
        while lines and not lines[0].strip():
            lines = lines[1:]
        out.extend(lines)
        w("")
    text = "\n".join(out).rstrip() + "\n"
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.out)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("facts")
    f.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"))
    f.add_argument("--repo")
    f.add_argument("--bin")
    t = sub.add_parser("table")
    t.add_argument("--tsv", required=True)
    d = sub.add_parser("doc")
    d.add_argument("--tsv", required=True)
    d.add_argument("--facts", required=True)
    d.add_argument("--cmds")
    d.add_argument("--notes")
    d.add_argument("--note", action="append")
    d.add_argument("--invocation", default="make bench")
    d.add_argument("--out", required=True)
    a = p.parse_args()
    return {"facts": cmd_facts, "table": cmd_table, "doc": cmd_doc}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
