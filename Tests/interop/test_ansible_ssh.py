"""The Ansible role and playbooks (scripts/ansible/) over real OpenSSH: three hosts, each an
`sshd` of its own on 127.0.0.1 (own port, own host key, own client tree), reached by the ssh
connection plugin with a client key and a known_hosts file that this test writes.

Run with `python3 -m pytest -q Tests/interop/test_ansible_ssh.py` as root (sshd must run as root
to log a session in; skipped otherwise, and without /usr/sbin/sshd or ansible-playbook). The Swift
binaries come from $COURIER_BIN, as for test_ansible.py, whose `Fleet` (outbox, inventory, client
trees, playbook runner) this test reuses: only the connection differs.

What is made here: an ed25519 client key and one ed25519 host key per host (ssh-keygen), one
sshd_config per host (`UsePAM no`, `PermitRootLogin prohibit-password`, public key only,
`AuthorizedKeysFile` and `PidFile` in the test directory, `StrictModes no` because pytest's
directories are not root-only, sftp by `internal-sftp`), and a known_hosts with each
`[127.0.0.1]:PORT` and its host key. The connection runs with `StrictHostKeyChecking=yes` and
that known_hosts only, no agent, no ControlPersist (no ssh master outlives a playbook).

Checked: host key checking is real (a known_hosts naming another key makes every host
unreachable); install.yml installs programs, trust store, inboxd.toml and the unit onto each
host's tree over SSH (the service start skipped: `courier_manage_service=false`, no systemd
here); deliver.yml copies byte for byte the packages `select` chose into each inbox; the
installed `courier-inboxd run --once` on each host applies them (store == upstream tree);
gather.yml fetches each host's status.json; every sshd logged the key logins. Then the thin-link
variables: `courier_push_stagger` spreads the copies of the next delivery over its window
(arrival times polled), `courier_push_bwlimit` paces a copy through sftp's `-l`, bad values fail
before any copy; c3's `courier_pull_*` variables install courier-pull, pull.toml and its units, and
the installed courier-pull pulls the next revision from the outbox served over HTTP on 127.0.0.1
(python's http.server). Every sshd (and any session process it left) and the HTTP server are
killed by pid in the fixture's finalizers, even on failure.
"""
import hashlib, json, os, re, shutil, socket, subprocess, sys, threading, time

import pytest

from test_ansible import BIN, DELIVER, INBOXD, PLAYBOOK, STAGE, UPSTREAM, Fleet, ok, run, tree

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen")
V1, V2, IPS = 20261120001, 20261121001, 20261121001
HOSTS = ["c1", "c2", "c3"]

pytestmark = [
    pytest.mark.skipif(not all(os.access(p, os.X_OK) for p in (STAGE, DELIVER, INBOXD)),
                       reason=f"Swift binaries not found in {BIN} (set COURIER_BIN)"),
    pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook not found (pip install ansible-core)"),
    pytest.mark.skipif(not os.access(SSHD, os.X_OK) or SSH_KEYGEN is None, reason="openssh-server / ssh-keygen not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd must run as root to log a session in"),
]


def free_port():
    """A port nothing listens on now (sshd is started right after; a lost race fails its start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, log, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sshd on port {port} exited {proc.returncode}: {open(log).read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                if c.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"sshd on port {port} not answering after {seconds} s: {open(log).read()}")


def descendants(pid):
    """Pids whose parent chain leads to pid (sshd's session processes), from /proc."""
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                parents[int(d)] = int(rest[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


class Sshd:
    """One host: its port, host key, sshd_config, log and process."""

    def __init__(self, ws, name, authorized_keys):
        self.name = name
        self.dir = os.path.join(ws, "ssh", name)
        os.makedirs(self.dir)
        self.key = os.path.join(self.dir, "ssh_host_ed25519_key")
        ok(run(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", f"host {name}", "-f", self.key))
        self.config = os.path.join(self.dir, "sshd_config")
        self.log = os.path.join(self.dir, "sshd.log")
        self.proc = None
        self.port = None
        self.authorized_keys = authorized_keys

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.key}\n"
                    f"PidFile {self.dir}/sshd.pid\nAuthorizedKeysFile {self.authorized_keys}\n"
                    "UsePAM no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "StrictModes no\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n")

    def start(self):
        for _ in range(5):  # another process may take the port between free_port and the bind
            self.port = free_port()
            self.write_config()
            ok(run(SSHD, "-t", "-f", self.config))
            logf = open(self.log, "w")
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config], stdout=logf, stderr=subprocess.STDOUT)
            logf.close()
            try:
                wait_listening(self.port, self.proc, self.log)
                return
            except AssertionError:
                if self.proc.poll() is None or "Address already in use" not in open(self.log).read():
                    raise
        raise AssertionError(f"{self.name}: no free port for sshd")

    def known_hosts_line(self):
        pub = open(self.key + ".pub").read().split()
        return f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n"

    def stop(self):
        """The listener and whatever session processes it still has, each by its pid."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in descendants(self.proc.pid) + [self.proc.pid]:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, request):
    f = Fleet(str(tmp_path_factory.mktemp("ansible-ssh")))
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    ssh = os.path.join(f.ws, "ssh")
    os.makedirs(ssh)
    f.client_key = os.path.join(ssh, "client_ed25519")
    ok(run(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "courier test controller", "-f", f.client_key))
    authorized = os.path.join(ssh, "authorized_keys")
    shutil.copy(f.client_key + ".pub", authorized)
    f.sshd = {h: Sshd(f.ws, h, authorized) for h in HOSTS}
    request.addfinalizer(lambda: [s.stop() for s in f.sshd.values()])
    for s in f.sshd.values():
        s.start()
    f.known_hosts = os.path.join(ssh, "known_hosts")
    with open(f.known_hosts, "w") as out:
        out.writelines(s.known_hosts_line() for s in f.sshd.values())

    f.init_stager()

    # c3 also gets the pull copier (courier_pull_*), its mirror the outbox over real HTTP.
    f.pull_bin = os.path.join(BIN, "courier-pull")
    if os.access(f.pull_bin, os.X_OK):
        shutil.copy2(f.pull_bin, f.bin)  # the snapshot the role installs: $COURIER_BIN may be rebuilt meanwhile
        f.http_port = free_port()
        f.http = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(f.http_port),
                                   "--directory", f.outbox], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        request.addfinalizer(lambda: (f.http.terminate(), f.http.wait()))
        deadline = time.monotonic() + 10
        while True:  # listening (a lost race for the port ends the server: say so)
            assert f.http.poll() is None, f"http.server on port {f.http_port} exited {f.http.returncode}"
            try:
                socket.create_connection(("127.0.0.1", f.http_port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"http.server on port {f.http_port} not listening"
                time.sleep(0.05)
    hosts = {}
    for h in HOSTS:
        r = f.root(h)
        hosts[h] = {"ansible_host": "127.0.0.1", "ansible_port": f.sshd[h].port,
                    "courier_install_dir": f"{r}/usr/local/bin", "courier_config_dir": f"{r}/etc/courier",
                    "courier_root": f"{r}/var/lib/courier", "courier_unit_dir": f"{r}/etc/systemd/system"}
    if os.access(f.pull_bin, os.X_OK):
        hosts["c3"].update(courier_pull_mirrors=[f"http://127.0.0.1:{f.http_port}/"], courier_pull_bwlimit="4M",
                           courier_pull_splay="5m", courier_pull_interval="30m",
                           courier_pull_log_file=f"{f.root('c3')}/var/log/courier/pull.log")
    f.ssh_vars = {
        "ansible_connection": "ssh", "ansible_user": "root",
        "ansible_ssh_private_key_file": f.client_key,
        # No agent, no other identity, no user or system known_hosts; one connection per task.
        "ansible_ssh_common_args": f"-F /dev/null -o UserKnownHostsFile={f.known_hosts} -o GlobalKnownHostsFile=/dev/null "
                                   "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o IdentityAgent=none",
        "ansible_ssh_args": "-o ControlMaster=no -o ControlPersist=no",
        "ansible_python_interpreter": sys.executable,
    }
    f.inventory_data = {"all": {
        "vars": dict(f.ssh_vars,
                     courier_bin_dir=f.bin, courier_trust_keys_dir=f.keys, courier_outbox=f.outbox,
                     courier_fleet_dir=f.fleet, courier_manage_service=False,
                     courier_inboxd_options={"clock_skew": "10m"},
                     courier_types={"virus-defs": {"keep": 2, "test_command": ["test", "-s", "$COURIER_PATH/main.ndb"]},
                                    "ips-rules": {}, "big-defs": {}}),
        "children": {"courier_clients": {"hosts": hosts}},
    }}
    with open(f.inventory, "w") as out:
        json.dump(f.inventory_data, out, indent=1)
    return f


def accepted_logins(f, h):
    return len(re.findall(r"Accepted publickey for root from 127\.0\.0\.1", open(f.sshd[h].log).read()))


def assert_all_ok(res, changed=None):
    assert res.returncode == 0, res.stdout + res.stderr
    for h in HOSTS:
        assert res.recap[h]["failed"] == 0 and res.recap[h]["unreachable"] == 0, res.stdout
        if changed is not None:
            assert (res.recap[h]["changed"] > 0) == changed, (h, res.stdout)


def inbox_files(f, h):
    return sorted(os.listdir(f.inbox(h)))


def test_host_keys_are_checked(fleet):
    """Against a known_hosts that names other keys for the same ports, nothing connects."""
    wrong = os.path.join(fleet.ws, "ssh", "known_hosts.wrong")
    other = os.path.join(fleet.ws, "ssh", "other_host_key")
    ok(run(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", other))
    pub = open(other + ".pub").read().split()
    with open(wrong, "w") as out:
        out.writelines(f"[127.0.0.1]:{s.port} {pub[0]} {pub[1]}\n" for s in fleet.sshd.values())
    args = fleet.ssh_vars["ansible_ssh_common_args"].replace(fleet.known_hosts, wrong)
    res = fleet.playbook("gather.yml", "-e", json.dumps({"ansible_ssh_common_args": args}))
    assert res.returncode != 0
    for h in HOSTS:
        assert res.recap[h]["unreachable"] == 1, res.stdout
    assert "Host key verification failed" in res.stdout + res.stderr, res.stdout + res.stderr


def test_install_deliver_apply_gather_over_ssh(fleet):
    before = {h: accepted_logins(fleet, h) for h in HOSTS}

    # install.yml: programs, trust store, inboxd.toml, unit, onto each host's own tree.
    res = fleet.playbook("install.yml")
    assert_all_ok(res, changed=True)
    key = open(os.path.join(fleet.keys, "stage.key.pub")).read()
    for h in HOSTS:
        r = fleet.root(h)
        for prog in ("courier-inboxd", "courier-deliver"):
            installed = fleet.path(h, "usr/local/bin", prog)
            assert os.stat(installed).st_mode & 0o777 == 0o755
            assert open(installed, "rb").read() == open(os.path.join(fleet.bin, prog), "rb").read(), installed
        assert open(fleet.path(h, "etc/courier/trust/stage.key.pub")).read() == key
        assert f'inbox = "{r}/var/lib/courier/inbox"' in open(fleet.config(h)).read()
        unit = open(fleet.path(h, "etc/systemd/system/courier-inboxd.service")).read().splitlines()
        assert f"ExecStart={r}/usr/local/bin/courier-inboxd run --config {r}/etc/courier/inboxd.toml" in unit
    res = fleet.playbook("install.yml")
    assert_all_ok(res, changed=False)
    # The service's first start (no systemd here): an empty pass writes status.json.
    for h in HOSTS:
        fleet.apply(h)

    # deliver.yml: the full packages, byte for byte, into each inbox.
    res = fleet.playbook("deliver.yml")
    assert_all_ok(res, changed=True)
    wanted = [fleet.pkg(fleet.outbox, "virus-defs", V1), fleet.pkg(fleet.outbox, "ips-rules", IPS)]
    for h in HOSTS:
        assert inbox_files(fleet, h) == sorted(os.path.basename(p) for p in wanted), h
        for p in wanted:
            assert open(os.path.join(fleet.inbox(h), os.path.basename(p)), "rb").read() == open(p, "rb").read()

    # The installed daemon on each host applies them.
    for h in HOSTS:
        fleet.apply(h)
        assert inbox_files(fleet, h) == []
        for type_, rev in (("virus-defs", V1), ("ips-rules", IPS)):
            assert tree(fleet.path(h, "var/lib/courier/store", type_, "current")) == tree(os.path.join(UPSTREAM, type_, str(rev)))

    # gather.yml: each host's status.json, fetched over SSH.
    res = fleet.playbook("gather.yml")
    assert_all_ok(res, changed=True)
    for h in HOSTS:
        status = json.load(open(os.path.join(fleet.fleet, h, "status.json")))
        assert status["types"]["virus-defs"]["installed"] == V1, (h, status)
        assert status == json.load(open(fleet.path(h, "var/lib/courier/state/status.json")))
    assert "3 clients, 0 stale" in res.stdout, res.stdout

    # It all went through each host's own sshd, by key.
    for h in HOSTS:
        assert accepted_logins(fleet, h) > before[h] + 10, (h, open(fleet.sshd[h].log).read()[-2000:])


def test_thin_links_over_ssh(fleet):
    """courier_push_bwlimit=512K and courier_push_stagger=6s on a 2 MiB package for three hosts:
    each upload grows at the cap (sftp -l 4096, its file polled in the remote temporary directory), the
    packages appear in the inboxes at slots 2 s apart (polled), and they apply."""
    big = os.path.join(fleet.upstream, "big-defs", "20261122001")
    os.makedirs(big)
    with open(big + "/big.bin", "wb") as out:
        out.write(os.urandom(2 << 20))  # incompressible: the package is as big
    with open(os.path.join(fleet.ws, "stage.toml"), "a") as out:
        out.write(f'[types.big-defs]\nsource = "dir"\npath = "{fleet.upstream}/big-defs"\n')
    fleet.stage()
    pkg = fleet.pkg(fleet.outbox, "big-defs", 20261122001)
    name = os.path.basename(pkg)
    size = os.path.getsize(pkg)

    remote_tmp = fleet.env["ANSIBLE_REMOTE_TEMP"]

    uploads, arrived, stop = {}, {}, threading.Event()

    def poll():
        while not stop.is_set():
            now = time.monotonic()
            for d, _, files in os.walk(remote_tmp):
                # The copy action's upload: "source", ".source" or ".source.cpkg" by Ansible version.
                for f in (f for f in files if f.lstrip(".").startswith("source")):
                    try:
                        n = os.path.getsize(os.path.join(d, f))
                    except OSError:
                        continue
                    uploads.setdefault(d, []).append((now, n))
            for h in HOSTS:
                if h not in arrived and os.path.exists(os.path.join(fleet.inbox(h), name)):
                    arrived[h] = now
            time.sleep(0.05)

    watcher = threading.Thread(target=poll)
    watcher.start()
    try:
        res = fleet.playbook("deliver.yml", "-e", json.dumps({"courier_push_bwlimit": "512K", "courier_push_stagger": "6s"}))
    finally:
        stop.set()
        watcher.join()
    assert_all_ok(res, changed=True)

    # The cap: each of the three uploads, while it grew from 10 % to 90 % of the package.
    rates = []
    for d, samples in uploads.items():
        mid = [(t, n) for t, n in samples if size * 0.1 <= n <= size * 0.9]
        if len(mid) >= 2 and mid[-1][1] > mid[0][1]:
            rates.append((mid[-1][1] - mid[0][1]) / (mid[-1][0] - mid[0][0]))
    print(f"test_ansible_ssh: uploads of {size} bytes at courier_push_bwlimit=512K: {[round(r / 1024) for r in rates]} KiB/s")
    assert len(rates) == 3, uploads
    for r in rates:
        assert 0.7 * 512 * 1024 <= r <= 1.15 * 512 * 1024, rates

    # The stagger: slots 2 s apart (6 s over 3 hosts), in the SHA-1 order of the host names.
    order = sorted(HOSTS, key=lambda h: hashlib.sha1(h.encode()).hexdigest())
    times = [arrived.get(h) for h in order]
    print(f"test_ansible_ssh: arrivals at courier_push_stagger=6s: {[(h, round(t - times[0], 2)) for h, t in zip(order, times)]}")
    assert None not in times, arrived
    for a, b in zip(times, times[1:]):
        # Each host's sleep starts when its SSH session does: allow for that on a loaded machine.
        assert 1.2 <= b - a <= 3.0, [round(t - times[0], 2) for t in times]

    for h in HOSTS:
        assert inbox_files(fleet, h) == [name], h  # renamed: no dot-name left
        assert open(os.path.join(fleet.inbox(h), name), "rb").read() == open(pkg, "rb").read()
        fleet.apply(h)
        assert tree(fleet.path(h, "var/lib/courier/store/big-defs/current")) == tree(big)


def test_bad_thin_link_values_fail_before_any_copy(fleet):
    for var, value in (("courier_push_bwlimit", "fast"), ("courier_push_stagger", "soon")):
        res = fleet.playbook("deliver.yml", "--limit", "c1", "-e", json.dumps({var: value}))
        assert res.returncode != 0 and res.recap["c1"]["failed"] == 1, res.stdout
        assert f"{var} '{value}'" in res.stdout, res.stdout
        assert inbox_files(fleet, "c1") == []


@pytest.mark.skipif(not os.access(os.path.join(BIN, "courier-pull"), os.X_OK), reason="courier-pull not built")
def test_pull_copier_installed_by_the_role(fleet):
    """c3 (courier_pull_mirrors set): courier-pull, pull.toml and its units with c3's paths and
    variables, installed by the install.yml run above; c1 has none. The installed courier-pull
    then really pulls the next revision (a delta) over HTTP from that mirror, and it applies."""
    r = fleet.root("c3")
    assert not os.path.exists(fleet.path("c1", "etc/courier/pull.toml"))
    assert not os.path.exists(fleet.path("c1", "usr/local/bin/courier-pull"))
    assert open(fleet.path("c3", "usr/local/bin/courier-pull"), "rb").read() == open(os.path.join(fleet.bin, "courier-pull"), "rb").read()
    conf = open(fleet.path("c3", "etc/courier/pull.toml")).read()
    assert f'inboxd_config = "{r}/etc/courier/inboxd.toml"' in conf, conf
    assert f'mirrors = ["http://127.0.0.1:{fleet.http_port}/"]' in conf and 'bwlimit = "4M"' in conf and 'splay = "5m"' in conf, conf
    unit = open(fleet.path("c3", "etc/systemd/system/courier-pull.service")).read().splitlines()
    assert (f"ExecStart={r}/usr/local/bin/courier-pull run --config {r}/etc/courier/pull.toml --no-splay "
            f"--log-file {r}/var/log/courier/pull.log") in unit, unit
    assert f"ReadWritePaths={r}/var/lib/courier {r}/var/log/courier" in unit, unit
    timer = open(fleet.path("c3", "etc/systemd/system/courier-pull.timer")).read().splitlines()
    assert "OnUnitInactiveSec=30m" in timer and "RandomizedDelaySec=5m" in timer, timer
    if shutil.which("systemd-analyze"):
        res = run("systemd-analyze", "verify", fleet.path("c3", "etc/systemd/system/courier-pull.timer"),
                  fleet.path("c3", "etc/systemd/system/courier-pull.service"))
        assert res.returncode == 0 and res.stderr == "", res.stderr

    fleet.stage(V2)
    os.makedirs(fleet.path("c3", "var/log/courier"), exist_ok=True)
    res = run(fleet.path("c3", "usr/local/bin/courier-pull"), "run", "--config", fleet.path("c3", "etc/courier/pull.toml"), "--no-splay")
    assert res.returncode == 0, res.stdout + res.stderr
    assert inbox_files(fleet, "c3") == [f"virus-defs_{V2}_from_{V1}.cpkg"]
    fleet.apply("c3")
    assert tree(fleet.path("c3", "var/lib/courier/store/virus-defs/current")) == tree(os.path.join(UPSTREAM, "virus-defs", str(V2)))
