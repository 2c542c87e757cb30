"""End to end: `make demo` (scripts/demo.sh) runs, and every client ends up holding exactly the
upstream content its policy group asks for.

Run with `python3 -m pytest -q Tests/interop/test_demo.py`. The Swift binaries come from
$COURIER_BIN (default /tmp/courier-bin): courier-stage, courier-deliver, courier-inboxd.

The demo stages three content types (virus-defs from a folder of publisher revisions, ips-rules
from a snapshot folder, phishing-urls from a tarball on a local HTTP server), runs one
courier-inboxd per client, pushes by policy.toml twice (full packages, then deltas), and keeps
its workspace. This test reads that workspace's own configuration (stage.toml, policy.toml, each
client's inboxd.toml) to decide what each client must hold, and compares each
`<store>/<type>/current` tree with the upstream tree byte for byte: the same paths, nothing
extra, the same contents and modes.
"""
import glob, json, os, re, stat, subprocess, sys, tarfile, time

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEMO = os.path.join(ROOT, "scripts", "demo.sh")
BIN = os.environ.get("COURIER_BIN", "/tmp/courier-bin")
PROGRAMS = ("courier-stage", "courier-deliver", "courier-inboxd")
pytestmark = [
    pytest.mark.skipif(not all(os.access(os.path.join(BIN, n), os.X_OK) for n in PROGRAMS),
                       reason=f"Swift binaries not found in {BIN} (set COURIER_BIN)"),
    pytest.mark.skipif(tomllib is None, reason="needs Python 3.11 (tomllib)"),
]
BUDGET = 110  # seconds; the whole test must stay under 2 minutes with debug binaries


def run_demo(ws, bin_dir=BIN):
    env = dict(os.environ, DEMO_WORKDIR=str(ws))
    t0 = time.monotonic()
    res = subprocess.run(["bash", DEMO, str(bin_dir)], capture_output=True, text=True, env=env,
                         timeout=BUDGET, cwd=ROOT)
    return res, time.monotonic() - t0


def processes_using(path):
    """pids whose command line mentions path (daemons and the HTTP server of one workspace)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmd and int(pid) != os.getpid():
            found.append((int(pid), cmd))
    return found


def load_toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def tree_of_dir(root):
    """{relative path: ("dir", mode) | ("file", mode, bytes)}; any other kind of entry fails."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode), f.read())
            else:
                out[rel] = ("other", st.st_mode)
    return out


def tree_of_tarball(path):
    out = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            rel = os.path.normpath(m.name)
            if rel == ".":
                continue
            if m.isdir():
                out[rel] = ("dir",)
            elif m.isfile():
                out[rel] = ("file", m.mode & 0o7777, tar.extractfile(m).read())
            else:
                out[rel] = ("other", m.type)
    return out


def assert_same_tree(got, want, what):
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, f"{what}: missing {missing}, extra {extra}"
    for rel in sorted(want):
        assert got[rel][0] == want[rel][0], f"{what}: {rel} is a {got[rel][0]}, upstream a {want[rel][0]}"
        if want[rel][0] == "file":
            assert got[rel][2] == want[rel][2], f"{what}: {rel} differs from upstream ({len(got[rel][2])} vs {len(want[rel][2])} bytes)"
            assert got[rel][1] == want[rel][1], f"{what}: {rel} has mode {got[rel][1]:o}, upstream {want[rel][1]:o}"


class Workspace:
    """What the demo left, read through its own configuration files."""

    def __init__(self, ws):
        self.ws = str(ws)
        self.stage = load_toml(os.path.join(self.ws, "stage.toml"))
        self.policy = load_toml(os.path.join(self.ws, "policy.toml"))
        self.outbox = os.path.join(self.ws, self.stage["outbox"])

    def path(self, base, rel):
        return rel if os.path.isabs(rel) else os.path.normpath(os.path.join(base, rel))

    def latest(self, type_):
        with open(os.path.join(self.outbox, type_, "latest.txt")) as f:
            return int(f.read())

    def clients(self):
        """[(group, client dir, inboxd.toml as dict)] for every inbox the policy names."""
        out = []
        for group, spec in self.policy["groups"].items():
            for pattern in spec["inboxes"]:
                inboxes = sorted(glob.glob(self.path(self.ws, pattern)))
                assert inboxes, f"policy group {group}: {pattern} matches no inbox"
                for inbox in inboxes:
                    client = os.path.dirname(inbox)
                    cfg = load_toml(os.path.join(client, "inboxd.toml"))
                    assert self.path(client, cfg["inbox"]) == inbox
                    out.append((group, client, cfg))
        return out

    def wanted_revision(self, group, type_):
        want = self.policy["groups"][group]["types"][type_]
        return self.latest(type_) if want == "latest" else int(want)

    def upstream_tree(self, type_, revision):
        """The content upstream published as `revision` of `type_`, as the stager's source saw it."""
        src = self.stage["types"][type_]
        if src["source"] == "dir" and src.get("layout", "revisions") == "revisions":
            return tree_of_dir(os.path.join(self.path(self.ws, src["path"]), str(revision)))
        # A snapshot folder and a vendor URL only hold their newest content: only the outbox's
        # latest can be checked against them.
        assert revision == self.latest(type_), f"{type_}: no upstream copy of revision {revision} to compare with"
        if src["source"] == "dir":
            return tree_of_dir(self.path(self.ws, src["path"]))
        assert src["source"] == "url" and re.match(r"http://127\.0\.0\.1:\d+/", src["url"]), src["url"]
        return tree_of_tarball(os.path.join(self.ws, "vendor-site", src["url"].rsplit("/", 1)[1]))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    ws = tmp_path_factory.mktemp("demo") / "ws"
    res, seconds = run_demo(ws)
    return ws, res, seconds


def test_demo_runs_and_cleans_up(demo):
    ws, res, seconds = demo
    assert res.returncode == 0, f"demo exit {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
    assert seconds < BUDGET
    out = res.stdout
    for n in range(1, 7):
        assert re.search(rf"^{n}\. ", out, re.M), f"step {n} missing:\n{out}"
    assert len(re.findall(r"^   \(\d+ ms\)$", out, re.M)) == 6, out
    assert f"Workspace (kept): {ws}" in out
    assert "\033[" not in out, "no terminal escapes when stdout is not a terminal"
    # The second push (step 5) takes deltas, and says so.
    assert "delta" in out.split("\n5. ", 1)[1].split("\n6. ", 1)[0]
    # Daemons and the HTTP server are gone; only 127.0.0.1 was contacted.
    assert processes_using(ws) == []
    with open(os.path.join(ws, "stage.toml")) as f:
        urls = re.findall(r"https?://[^\"\s]+", f.read())
    assert urls and all(u.startswith("http://127.0.0.1:") for u in urls), urls


def test_every_client_holds_what_its_group_asks_for(demo):
    ws, res, _ = demo
    assert res.returncode == 0, res.stderr
    w = Workspace(ws)
    clients = w.clients()
    groups = {g for g, _, _ in clients}
    assert len(clients) == 3 and groups == {"pilot", "production"}, clients
    held = {}
    for group, client, cfg in clients:
        name = os.path.basename(client)
        store = w.path(client, cfg["store"])
        state = w.path(client, cfg["state_dir"])
        with open(os.path.join(state, "status.json")) as f:
            status = json.load(f)
        types = w.policy["groups"][group]["types"]
        assert sorted(os.listdir(store)) == sorted(types), f"{name}: store holds {os.listdir(store)}"
        for type_ in types:
            rev = w.wanted_revision(group, type_)
            current = os.path.join(store, type_, "current")
            assert os.readlink(current) == str(rev), f"{name}/{type_}: current -> {os.readlink(current)}, want {rev}"
            assert status["types"][type_]["installed"] == rev
            assert "last_error" not in status["types"][type_], status["types"][type_]
            assert status["types"][type_].get("pending", []) == []
            assert_same_tree(tree_of_dir(current), w.upstream_tree(type_, rev), f"{name}/{type_}@{rev}")
            held[(name, type_)] = rev
        inbox = w.path(client, cfg["inbox"])
        assert os.listdir(inbox) == [], f"{name}: inbox not empty: {os.listdir(inbox)}"
        quarantine = w.path(client, cfg["quarantine"])
        assert not os.path.isdir(quarantine) or os.listdir(quarantine) == [], f"{name}: quarantined {os.listdir(quarantine)}"
    # The scenario means something: production is pinned below the pilot's virus-defs.
    pilot = {rev for (n, t), rev in held.items() if t == "virus-defs" and n.startswith("pilot")}
    prod = {rev for (n, t), rev in held.items() if t == "virus-defs" and n.startswith("prod")}
    assert len(pilot) == 1 and len(prod) == 1 and max(prod) < min(pilot), held


def test_clients_took_deltas_for_the_second_revision(demo):
    ws, res, _ = demo
    assert res.returncode == 0, res.stderr
    w = Workspace(ws)
    for group, client, cfg in w.clients():
        with open(os.path.join(w.path(client, cfg["state_dir"]), "history.jsonl")) as f:
            events = [json.loads(line) for line in f if line.strip()]
        for type_ in w.policy["groups"][group]["types"]:
            applied = [e for e in events if e.get("event") == "applied" and e.get("type") == type_]
            assert applied and "_from_" not in applied[0]["package"], f"first apply of {type_} is a full package: {applied}"
            if len(applied) > 1:
                # A delta wherever the stager published one; where it would have been no smaller
                # than 90 % of the full package, the stager skipped it and the client took the full.
                rev = applied[-1]["revision"]
                offered = glob.glob(os.path.join(ws, "outbox", type_, str(rev), f"{type_}_{rev}_from_*.cpkg"))
                if offered:
                    assert "_from_" in applied[-1]["package"], f"{client}: {type_} updated by {applied[-1]['package']}, not a delta"
                else:
                    with open(os.path.join(ws, "stage-run-2.json")) as f:
                        run2 = {t["type"]: t for t in json.load(f)["types"]}
                    assert run2[type_]["skipped_deltas"], f"{type_}: no delta published and none skipped: {run2[type_]}"
                    assert "_from_" not in applied[-1]["package"]
            # Pinned below latest: applied once; otherwise twice (full, then delta).
            want = 1 if w.wanted_revision(group, type_) != w.latest(type_) else 2
            assert len(applied) == want, f"{client}: {type_}: {applied}"


def test_demo_refuses_a_non_empty_workdir(tmp_path):
    (tmp_path / "something").write_text("x")
    res, _ = run_demo(tmp_path)
    assert res.returncode == 64 and "not empty" in res.stderr


def test_a_failing_step_stops_every_background_process(tmp_path):
    """courier-deliver fails in step 4: the demo exits non-zero, names the step, and leaves no daemon
    or HTTP server behind."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for n in ("courier-stage", "courier-inboxd"):
        os.symlink(os.path.join(os.path.abspath(BIN), n), fake / n)
    (fake / "courier-deliver").write_text("#!/bin/sh\necho 'courier-deliver: simulated failure' >&2\nexit 12\n")
    (fake / "courier-deliver").chmod(0o755)
    ws = tmp_path / "ws"
    res, _ = run_demo(ws, fake)
    assert res.returncode != 0, res.stdout
    assert "FAILED" in res.stderr and "in step 4." in res.stderr, res.stderr
    assert processes_using(ws) == []
