"""Fleet delivery through Ansible: scripts/ansible/ (role courier_client, install.yml, deliver.yml,
gather.yml) run by the real ansible-playbook against the Swift tools.

Run with `python3 -m pytest -q Tests/interop/test_ansible.py`. The Swift binaries come from
$COURIER_BIN (default /tmp/courier-bin); needs the pip package `ansible-core`.

Three inventory hosts, all on this machine (`ansible_connection=local`), each with its own client
tree under a temporary directory (no systemd: `courier_manage_service=false`; `courier-inboxd run
--once` stands in for the service). c1 and c2 follow the outbox's latest revisions; c3 is pinned to
virus-defs 20261120001 through `courier_revisions`. The outbox is staged by `courier-stage run`
from a copy of Fixtures/upstream: first one virus-defs revision, then the next (full and delta).

Checked: the role installs programs, trust keys, inboxd.toml and the unit with each host's paths,
and a second run changes nothing; deliver.yml copies what `courier-deliver select` chooses (full
packages, then the delta) byte for byte into the inboxes; the daemon applies them and the store
equals the upstream trees; a package with one flipped byte is refused by the copy's validate: (the
host fails, nothing lands in its inbox); a repeated run changes nothing; gather.yml and the report
play list every host. Nothing is written into the repository; no network.
"""
import filecmp, json, os, re, shutil, stat, subprocess, sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ANSIBLE_DIR = os.path.join(ROOT, "scripts", "ansible")
UPSTREAM = os.path.join(ROOT, "Fixtures", "upstream")
BIN = os.path.abspath(os.environ.get("COURIER_BIN", "/tmp/courier-bin"))
STAGE, DELIVER, INBOXD = (os.path.join(BIN, n) for n in ("courier-stage", "courier-deliver", "courier-inboxd"))
# The script beside this Python when there is one (a pyenv shim costs a shell per run), else PATH's.
PLAYBOOK = next((p for p in (os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),) if os.access(p, os.X_OK)),
                shutil.which("ansible-playbook"))

V1, V2, IPS = 20261120001, 20261121001, 20261121001
HOSTS = ["c1", "c2", "c3"]


def _has_select():
    if not os.access(DELIVER, os.X_OK):
        return False
    res = subprocess.run([DELIVER, "select", "--help"], capture_output=True, text=True, timeout=60)
    return res.returncode == 0


pytestmark = [
    pytest.mark.skipif(not all(os.access(p, os.X_OK) for p in (STAGE, DELIVER, INBOXD)),
                       reason=f"Swift binaries not found in {BIN} (set COURIER_BIN)"),
    pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook not found (pip install ansible-core)"),
]
needs_select = pytest.mark.skipif(not _has_select(), reason="courier-deliver has no select/report yet")


# ---- helpers ----
def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)


def ok(res):
    assert res.returncode == 0, f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def tree(root):
    """relative path -> bytes, for every regular file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def recap(stdout):
    """PLAY RECAP: host -> {ok, changed, unreachable, failed}."""
    rows = {}
    for m in re.finditer(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", stdout, re.M):
        rows[m.group(1)] = dict(ok=int(m.group(2)), changed=int(m.group(3)), unreachable=int(m.group(4)), failed=int(m.group(5)))
    return rows


class Fleet:
    def __init__(self, ws):
        self.ws = ws
        # A snapshot of the programs: $COURIER_BIN may be rebuilt while the test runs.
        self.bin = os.path.join(ws, "bin")
        os.makedirs(self.bin)
        for p in (STAGE, DELIVER, INBOXD):
            shutil.copy2(p, self.bin)
        self.stage_bin, self.deliver_bin, self.inboxd_bin = (os.path.join(self.bin, os.path.basename(p)) for p in (STAGE, DELIVER, INBOXD))
        self.outbox = os.path.join(ws, "outbox")
        self.fleet = os.path.join(ws, "fleet")
        self.keys = os.path.join(ws, "keys")
        self.upstream = os.path.join(ws, "upstream")
        self.inventory = os.path.join(ws, "inventory.yml")
        self.env = dict(os.environ,
                        ANSIBLE_CONFIG=os.path.join(ws, "ansible.cfg"),  # empty: no user or system config
                        ANSIBLE_HOME=os.path.join(ws, "ansible-home"),
                        ANSIBLE_LOCAL_TEMP=os.path.join(ws, "ansible-local-tmp"),
                        ANSIBLE_REMOTE_TEMP=os.path.join(ws, "ansible-remote-tmp"),
                        ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0",
                        ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_FORKS="8", ANSIBLE_GATHERING="explicit",
                        ANSIBLE_PIPELINING="1",
                        PYTHONDONTWRITEBYTECODE="1")
        open(self.env["ANSIBLE_CONFIG"], "w").close()

    def root(self, host):
        return os.path.join(self.ws, "clients", host)

    def path(self, host, *rel):
        return os.path.join(self.root(host), *rel)

    def inbox(self, host):
        return self.path(host, "var/lib/courier/inbox")

    def config(self, host):
        return self.path(host, "etc/courier/inboxd.toml")

    def stage(self, *revisions):
        """Add upstream revisions (virus-defs), then one `courier-stage run`."""
        for rev in revisions:
            shutil.copytree(os.path.join(UPSTREAM, "virus-defs", str(rev)), os.path.join(self.upstream, "virus-defs", str(rev)))
        ok(run(self.stage_bin, "run", "--config", os.path.join(self.ws, "stage.toml")))

    def playbook(self, name, *extra):
        res = run(PLAYBOOK, "-i", self.inventory, os.path.join(ANSIBLE_DIR, name), *extra, env=self.env, cwd=self.ws)
        res.recap = recap(res.stdout)
        return res

    def apply(self, host):
        """What the service would do: the installed daemon applies what is in the inbox."""
        return ok(run(self.path(host, "usr/local/bin/courier-inboxd"), "run", "--once", "--config", self.config(host)))

    def init_stager(self):
        """A staging key trusted by the clients, stage.toml for both types, and revision V1 in
        the outbox: what test_ansible.py and test_ansible_ssh.py start from."""
        os.makedirs(self.keys)
        ok(run(self.stage_bin, "keygen", "--out", os.path.join(self.ws, "stage.key")))
        shutil.copy(os.path.join(self.ws, "stage.key.pub"), self.keys)
        shutil.copytree(os.path.join(UPSTREAM, "ips-rules"), os.path.join(self.upstream, "ips-rules"))
        with open(os.path.join(self.ws, "stage.toml"), "w") as out:
            out.write(f'outbox = "{self.outbox}"\nkey = "{self.ws}/stage.key"\nstate_dir = "{self.ws}/stage-state"\n'
                      f'[types.virus-defs]\nsource = "dir"\npath = "{self.upstream}/virus-defs"\n'
                      f'[types.ips-rules]\nsource = "dir"\npath = "{self.upstream}/ips-rules"\n')
        self.stage(V1)

    def pkg(self, outbox, type_, rev, base=None):
        name = f"{type_}_{rev}.cpkg" if base is None else f"{type_}_{rev}_from_{base}.cpkg"
        return os.path.join(outbox, type_, str(rev), name)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(str(tmp_path_factory.mktemp("ansible")))
    f.init_stager()

    hosts = {}
    for h in HOSTS:
        r = f.root(h)
        hosts[h] = {"courier_install_dir": f"{r}/usr/local/bin", "courier_config_dir": f"{r}/etc/courier",
                    "courier_root": f"{r}/var/lib/courier", "courier_unit_dir": f"{r}/etc/systemd/system"}
    hosts["c3"]["courier_revisions"] = {"virus-defs": V1}
    inventory = {"all": {
        "vars": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "courier_bin_dir": f.bin, "courier_trust_keys_dir": f.keys, "courier_outbox": f.outbox,
            "courier_fleet_dir": f.fleet, "courier_manage_service": False,
            "courier_inboxd_options": {"clock_skew": "10m", "threshold": 1, "accept_unknown_types": False},
            "courier_types": {
                "virus-defs": {"keep": 2, "test_command": ["test", "-s", "$COURIER_PATH/main.ndb"]},
                "ips-rules": {"test_command": 'test -s "$COURIER_PATH/rules/courier-test.rules"'},
            },
        },
        "children": {"courier_clients": {"hosts": hosts}},
    }}
    with open(f.inventory, "w") as out:
        json.dump(inventory, out, indent=1)  # JSON is YAML

    res = f.playbook("install.yml")
    assert res.returncode == 0 and all(res.recap[h]["failed"] == 0 for h in HOSTS), res.stdout + res.stderr
    # The service's first start: an empty pass writes status.json.
    for h in HOSTS:
        f.apply(h)
    return f


# ---- the role ----
def test_role_installs_each_client(fleet):
    key = open(os.path.join(fleet.keys, "stage.key.pub")).read()
    for h in HOSTS:
        r = fleet.root(h)
        for prog in ("courier-inboxd", "courier-deliver"):
            installed = fleet.path(h, "usr/local/bin", prog)
            assert os.stat(installed).st_mode & 0o777 == 0o755
            assert filecmp.cmp(installed, os.path.join(fleet.bin, prog), shallow=False), installed
        assert os.listdir(fleet.path(h, "etc/courier/trust")) == ["stage.key.pub"]
        assert open(fleet.path(h, "etc/courier/trust/stage.key.pub")).read() == key
        for d in ("etc/courier", "etc/courier/trust", "var/lib/courier", "var/lib/courier/inbox"):
            assert stat.S_IMODE(os.stat(fleet.path(h, d)).st_mode) == 0o755, d
        for d in ("state", "store"):  # made by the daemon (quarantine: when first needed)
            assert os.path.isdir(fleet.path(h, "var/lib/courier", d))
        conf = open(fleet.config(h)).read()
        assert f'inbox = "{r}/var/lib/courier/inbox"' in conf
        assert f'trust = "{r}/etc/courier/trust"' in conf
        assert f'state_dir = "{r}/var/lib/courier/state"' in conf
        assert 'test_command = ["test", "-s", "$COURIER_PATH/main.ndb"]' in conf
        assert 'test_command = "test -s \\"$COURIER_PATH/rules/courier-test.rules\\""' in conf
        assert "accept_unknown_types = false" in conf and "threshold = 1" in conf
        unit = open(fleet.path(h, "etc/systemd/system/courier-inboxd.service")).read()
        lines = unit.splitlines()
        assert f"ExecStart={r}/usr/local/bin/courier-inboxd run --config {r}/etc/courier/inboxd.toml" in lines
        assert f"ReadWritePaths={r}/var/lib/courier" in lines
        assert f"RequiresMountsFor={r}/var/lib/courier" in lines
        assert "KillMode=mixed" in lines and "[Install]" in lines  # the rest is the repository's unit
        if shutil.which("systemd-analyze") and h == "c1":
            res = run("systemd-analyze", "verify", fleet.path(h, "etc/systemd/system/courier-inboxd.service"))
            assert res.returncode == 0, res.stderr
        # The daemon accepted the configuration and wrote its status (fixture: run --once).
        assert json.load(open(fleet.path(h, "var/lib/courier/state/status.json")))["format"] == 1
    # Idempotent: a second run changes nothing (one host: every host runs the same tasks).
    res = fleet.playbook("install.yml", "--limit", "c1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.recap["c1"]["changed"] == 0, res.stdout


# ---- delivery ----
@needs_select
def test_deliver_apply_report(fleet):
    def inbox_files(h):
        return sorted(os.listdir(fleet.inbox(h)))  # dot-names included: no temporary file may stay

    def assert_delivered(h, paths):
        assert inbox_files(h) == sorted(os.path.basename(p) for p in paths), h
        for p in paths:
            dest = os.path.join(fleet.inbox(h), os.path.basename(p))
            assert open(dest, "rb").read() == open(p, "rb").read(), dest
            assert stat.S_IMODE(os.stat(dest).st_mode) == 0o644, dest

    def assert_current(h, type_, rev):
        got = tree(fleet.path(h, "var/lib/courier/store", type_, "current"))
        assert got == tree(os.path.join(UPSTREAM, type_, str(rev))), (h, type_, rev, sorted(got))

    def report_shown(res):
        """The report as the playbook printed it (once, on the controller, after every host)."""
        assert "TASK [courier_client : Show the report]" in res.stdout, res.stdout
        return res.stdout[res.stdout.index("Show the report"):res.stdout.index("PLAY RECAP")]

    def assert_ran(res):
        assert res.returncode == 0, res.stdout + res.stderr
        assert all(res.recap[h]["failed"] == 0 and res.recap[h]["unreachable"] == 0 for h in HOSTS), res.stdout
        assert f"{len(HOSTS)} clients" in report_shown(res), res.stdout

    # 1. First delivery: full packages everywhere (c3's pinned revision is also the latest).
    res = fleet.playbook("deliver.yml")
    assert_ran(res)
    assert all(res.recap[h]["changed"] > 0 for h in HOSTS), res.stdout
    for h in HOSTS:
        assert_delivered(h, [fleet.pkg(fleet.outbox, "virus-defs", V1), fleet.pkg(fleet.outbox, "ips-rules", IPS)])
        assert os.path.isfile(os.path.join(fleet.fleet, h, "status.json"))

    # 2. The daemon applies them: the store holds the upstream trees, the inbox empties.
    for h in HOSTS:
        fleet.apply(h)
        assert inbox_files(h) == []
        assert_current(h, "virus-defs", V1)
        assert_current(h, "ips-rules", IPS)

    # 3. Upstream publishes the next revision: a full package and a delta in the outbox.
    fleet.stage(V2)
    delta = fleet.pkg(fleet.outbox, "virus-defs", V2, base=V1)
    assert os.path.isfile(delta)

    # 4. A corrupted copy of the outbox: validate: refuses the package, the host fails, its inbox
    #    stays empty (not even a temporary file).
    bad_outbox = os.path.join(fleet.ws, "outbox-tampered")
    shutil.copytree(fleet.outbox, bad_outbox, symlinks=True)
    bad = fleet.pkg(bad_outbox, "virus-defs", V2, base=V1)
    data = bytearray(open(bad, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(bad, "wb").write(bytes(data))
    assert run(fleet.deliver_bin, "verify", "--trust", fleet.keys, bad).returncode != 0
    #    c3 (pinned, up to date) needs nothing from it and goes on; the report still runs.
    res = fleet.playbook("deliver.yml", "--limit", "c2,c3", "-e", f"courier_outbox={bad_outbox}")
    assert res.returncode != 0 and res.recap["c2"]["failed"] == 1 and res.recap["c3"]["failed"] == 0, res.stdout
    assert "failed to validate" in res.stdout and "FAIL " in res.stdout, res.stdout  # the verifier's reason
    assert inbox_files("c2") == [] and inbox_files("c3") == []
    assert "2 clients" in report_shown(res)

    # 5. The real outbox: c1 and c2 get the delta (status.json says they hold its base), c3 nothing.
    res = fleet.playbook("deliver.yml")
    assert_ran(res)
    for h in ("c1", "c2"):
        assert_delivered(h, [delta])
    assert inbox_files("c3") == []
    for h in HOSTS:
        fleet.apply(h)
        assert inbox_files(h) == []
    for h in ("c1", "c2"):
        assert_current(h, "virus-defs", V2)
    assert_current("c3", "virus-defs", V1)

    # 6. gather.yml: every host's fresh status, and the report names them all.
    res = fleet.playbook("gather.yml")
    assert_ran(res)
    for h, rev in (("c1", V2), ("c2", V2), ("c3", V1)):
        status = json.load(open(os.path.join(fleet.fleet, h, "status.json")))
        assert status["types"]["virus-defs"]["installed"] == rev, (h, status)
    shown = report_shown(res)
    assert "3 clients, 0 stale" in shown, shown
    for h in HOSTS:  # the clients share one host name here, so the report adds each file's path
        assert f"/fleet/{h}/status.json" in shown, (h, shown)
    # The same report as JSON: one row per client and type.
    report = ok(run(fleet.deliver_bin, "report", "--json", "--outbox", fleet.outbox,
                    *(f"--status={fleet.fleet}/{h}/status.json" for h in HOSTS))).stdout
    rows = {(os.path.basename(os.path.dirname(r["status_path"])), r["type"]): r
            for r in map(json.loads, report.splitlines())}
    assert {k: r["installed"] for k, r in rows.items()} == {
        ("c1", "virus-defs"): V2, ("c2", "virus-defs"): V2, ("c3", "virus-defs"): V1,
        ("c1", "ips-rules"): IPS, ("c2", "ips-rules"): IPS, ("c3", "ips-rules"): IPS}, report
    assert rows[("c3", "virus-defs")]["behind"] == 1 and rows[("c1", "virus-defs")]["behind"] == 0, report

    # 7. Nothing new: a delivery changes nothing (status fetched unchanged, nothing selected).
    res = fleet.playbook("deliver.yml")
    assert_ran(res)
    assert {h: res.recap[h]["changed"] for h in HOSTS} == {h: 0 for h in HOSTS}, res.stdout
    for h in HOSTS:
        assert inbox_files(h) == []

    # Nothing was written into the repository.
    assert not os.path.exists(os.path.join(ANSIBLE_DIR, "fleet"))
