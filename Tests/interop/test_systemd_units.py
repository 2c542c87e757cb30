"""Static checks of the service files in scripts/systemd/ and the crontab in scripts/cron/.

Run with `python3 -m pytest -q Tests/interop/test_systemd_units.py`. What this proves, and what
it does not:
  - every unit parses for systemd itself (`systemd-analyze verify`, skipped when systemd-analyze
    is not installed), and its sandbox rates no worse than a fixed exposure level
    (`systemd-analyze security --offline`, skipped on systemd < 250);
  - the keys the operations guide promises are there with the promised values, read by a small
    parser of the unit-file syntax (sections, repeated keys, backslash continuations);
  - the command lines use options the programs accept (`--help` of the built binaries, from
    $COURIER_BIN or .build/debug; skipped without them);
  - the programs run under the kernel's no-W+X rule, prctl(PR_SET_MDWE), the mechanism behind
    MemoryDenyWriteExecute=yes (skipped on kernels before 6.3 or without the binaries).
Nothing here starts the units under a real systemd: the sandbox itself is systemd's to enforce.
"""
import ctypes, os, re, shlex, shutil, subprocess, sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SYSTEMD_DIR = os.path.join(ROOT, "scripts", "systemd")
CRONTAB = os.path.join(ROOT, "scripts", "cron", "courier-stage.crontab")
INBOXD_UNIT = os.path.join(SYSTEMD_DIR, "courier-inboxd.service")
STAGE_UNIT = os.path.join(SYSTEMD_DIR, "courier-stage.service")
STAGE_TIMER = os.path.join(SYSTEMD_DIR, "courier-stage.timer")
PULL_UNIT = os.path.join(SYSTEMD_DIR, "courier-pull.service")
PULL_TIMER = os.path.join(SYSTEMD_DIR, "courier-pull.timer")
PULL_CRONTAB = os.path.join(ROOT, "scripts", "cron", "courier-pull.crontab")
RELAY_UNIT = os.path.join(SYSTEMD_DIR, "courier-pull-mirror.service")
RELAY_TIMER = os.path.join(SYSTEMD_DIR, "courier-pull-mirror.timer")
UNITS = [INBOXD_UNIT, STAGE_UNIT, STAGE_TIMER, PULL_UNIT, PULL_TIMER, RELAY_UNIT, RELAY_TIMER]
INSTALLED_BIN = "/usr/local/bin/"


def _bin_dir():
    for d in (os.environ.get("COURIER_BIN"), os.path.join(ROOT, ".build", "debug"), os.path.join(ROOT, ".build", "release")):
        if d and all(os.access(os.path.join(d, n), os.X_OK) for n in ("courier-stage", "courier-inboxd")):
            return d
    return None


BIN = _bin_dir()
needs_bin = pytest.mark.skipif(BIN is None, reason="courier binaries not found ($COURIER_BIN or .build/debug)")


# ---- a small parser of systemd's unit-file syntax (systemd.syntax(7)) ----
def parse_unit(path):
    """{section: [(key, value), ...]}; keys may repeat. Comments (# ;), blank lines and
    backslash-newline continuations as systemd reads them."""
    sections, current, pending = {}, None, ""
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if pending:
                # Comment lines inside a continuation are skipped, as systemd does.
                if line.lstrip().startswith(("#", ";")):
                    continue
                line = pending + " " + line.strip()
                pending = ""
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", ";")):
                continue
            if stripped.endswith("\\"):
                pending = stripped[:-1].rstrip()
                continue
            if stripped.startswith("["):
                assert stripped.endswith("]"), f"{path}:{n}: bad section header {stripped!r}"
                current = stripped[1:-1]
                assert current not in sections, f"{path}:{n}: section [{current}] twice"
                sections[current] = []
                continue
            assert current is not None, f"{path}:{n}: key outside any section"
            assert "=" in stripped, f"{path}:{n}: not key=value: {stripped!r}"
            key, value = stripped.split("=", 1)
            key = key.strip()
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key), f"{path}:{n}: bad key {key!r}"
            sections[current].append((key, value.strip()))
    assert not pending, f"{path}: ends inside a continuation line"
    return sections


def values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit, section, key):
    v = values(unit, section, key)
    assert len(v) == 1, f"[{section}] {key}= expected once, found {v}"
    return v[0]


def words(unit, section, key):
    """All space-separated words of a list-valued key; an empty assignment resets, as in systemd."""
    out = []
    for v in values(unit, section, key):
        out = [] if v == "" else out + v.split()
    return out


def option_value(argv, name):
    if name in argv:
        return argv[argv.index(name) + 1]
    for a in argv:
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


# Hardening both services must have, with the value the operations guide states.
COMMON_HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0022",
}


# ---- every unit ----
@pytest.mark.parametrize("path", UNITS, ids=os.path.basename)
def test_unit_parses_and_has_a_description(path):
    u = parse_unit(path)
    assert "Unit" in u and one(u, "Unit", "Description")
    if path not in (STAGE_UNIT, PULL_UNIT, RELAY_UNIT):   # started by their timers, never enabled themselves
        assert "Install" in u, "no [Install] section: the unit could not be enabled"


@pytest.mark.parametrize("path", [INBOXD_UNIT, STAGE_UNIT, PULL_UNIT, RELAY_UNIT], ids=os.path.basename)
def test_every_exec_line_is_absolute(path):
    u = parse_unit(path)
    execs = [(k, v) for k, v in u["Service"] if k.startswith("Exec")]
    assert execs, "no Exec line"
    for k, v in execs:
        argv = shlex.split(v.lstrip("-@:+!"))
        assert argv and os.path.isabs(argv[0]), f"{k}={v}: the program must be an absolute path"
        for name in ("--config", "--log-file", "--metrics-file"):
            p = option_value(argv, name)
            assert p is None or os.path.isabs(p), f"{k}: {name} {p} must be absolute (no working directory under systemd)"


@pytest.mark.parametrize("path", [INBOXD_UNIT, STAGE_UNIT, PULL_UNIT, RELAY_UNIT], ids=os.path.basename)
def test_common_hardening(path):
    u = parse_unit(path)
    for key, want in COMMON_HARDENING.items():
        assert one(u, "Service", key) == want, f"{key}= should be {want}"
    rw = words(u, "Service", "ReadWritePaths")
    assert rw, "ProtectSystem=strict without ReadWritePaths: the program could write nothing"
    for p in rw:
        assert os.path.isabs(p.lstrip("-+")), f"ReadWritePaths entry {p} is not absolute"


# ---- courier-inboxd.service ----
def test_inboxd_service():
    u = parse_unit(INBOXD_UNIT)
    assert one(u, "Service", "Type") in ("simple", "exec")
    argv = shlex.split(one(u, "Service", "ExecStart"))
    assert argv == [INSTALLED_BIN + "courier-inboxd", "run", "--config", "/etc/courier/inboxd.toml"]
    assert one(u, "Service", "Restart") == "on-failure"
    # The daemon needs no network: sockets are AF_UNIX only.
    assert words(u, "Service", "RestrictAddressFamilies") == ["AF_UNIX"]
    # Writable: /var/lib/courier (inbox, state, store, quarantine) and nothing else.
    assert words(u, "Service", "ReadWritePaths") == ["/var/lib/courier"]
    # It runs as root; if the capabilities are bounded, CAP_LEASE (the "still being written"
    # probe) must be among them.
    assert not values(u, "Service", "User") and not values(u, "Service", "DynamicUser")
    caps = words(u, "Service", "CapabilityBoundingSet")
    if values(u, "Service", "CapabilityBoundingSet"):
        assert "CAP_LEASE" in caps and not any(c.startswith("~") for c in caps)
    # SIGTERM to the daemon only, so a running test/apply command is not killed under it.
    assert one(u, "Service", "KillMode") == "mixed"
    assert "multi-user.target" in words(u, "Install", "WantedBy")


def test_inboxd_unit_documents_reloading_another_service():
    text = open(INBOXD_UNIT, encoding="utf-8").read()
    for needle in ("systemctl reload", "polkit", "NoNewPrivileges", "CAP_LEASE"):
        assert needle in text, f"the comments should explain {needle}"


# ---- courier-stage.service and .timer ----
def test_stage_service():
    u = parse_unit(STAGE_UNIT)
    assert one(u, "Service", "Type") == "oneshot"
    argv = shlex.split(one(u, "Service", "ExecStart"))
    assert argv[:2] == [INSTALLED_BIN + "courier-stage", "run"]
    assert option_value(argv, "--config") == "/etc/courier/stage.toml"
    assert option_value(argv, "--metrics-file") == "/var/lib/node_exporter/textfile_collector/courier_stage.prom"
    assert option_value(argv, "--log-file") == "/var/log/courier/stage.log"
    assert option_value(argv, "--splay") is None, "the timer's RandomizedDelaySec does the splay"
    # Network allowed.
    fams = words(u, "Service", "RestrictAddressFamilies")
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(fams) and not any(f.startswith("~") for f in fams)
    # The directories the command line writes into are writable.
    writable = [p.lstrip("-+") for p in words(u, "Service", "ReadWritePaths")]
    writable += ["/var/lib/" + d for d in words(u, "Service", "StateDirectory")]
    writable += ["/var/log/" + d for d in words(u, "Service", "LogsDirectory")]
    for f in (option_value(argv, "--metrics-file"), option_value(argv, "--log-file")):
        assert os.path.dirname(f) in writable, f"{os.path.dirname(f)} (for {f}) is not writable in the sandbox"
    assert "/srv/courier/outbox" in writable, "the outbox (stage.toml's default in the guide) must be writable"
    assert "/var/lib/courier-stage" in writable, "the state directory must be writable"
    assert not values(u, "Install", "WantedBy"), "the service is started by the timer, not enabled on its own"


def test_stage_timer():
    u = parse_unit(STAGE_TIMER)
    assert one(u, "Timer", "OnCalendar")
    delay = one(u, "Timer", "RandomizedDelaySec")
    assert re.fullmatch(r"\d+(s|min|m|h)?", delay), delay
    assert one(u, "Timer", "Persistent") == "true"
    unit = values(u, "Timer", "Unit")
    assert unit in ([], ["courier-stage.service"])
    assert os.path.exists(os.path.join(SYSTEMD_DIR, "courier-stage.service"))
    assert "timers.target" in words(u, "Install", "WantedBy")


# ---- courier-pull.service and .timer ----
def test_pull_service():
    u = parse_unit(PULL_UNIT)
    assert one(u, "Service", "Type") == "oneshot"
    argv = shlex.split(one(u, "Service", "ExecStart"))
    assert argv[:2] == [INSTALLED_BIN + "courier-pull", "run"]
    assert option_value(argv, "--config") == "/etc/courier/pull.toml"
    # The timer's RandomizedDelaySec spreads the start; pull.toml's splay must not add to it.
    assert "--no-splay" in argv
    fams = words(u, "Service", "RestrictAddressFamilies")
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(fams) and not any(f.startswith("~") for f in fams)
    writable = [p.lstrip("-+") for p in words(u, "Service", "ReadWritePaths")]
    writable += ["/var/log/" + d for d in words(u, "Service", "LogsDirectory")]
    # The client's tree (the default inbox and state_dir of inboxd.toml) and the log's directory.
    assert "/var/lib/courier" in writable
    assert os.path.dirname(option_value(argv, "--log-file")) in writable
    # Root without any capability: the inbox is root's own.
    assert values(u, "Service", "CapabilityBoundingSet") == [""]
    assert not values(u, "Install", "WantedBy"), "the service is started by the timer, not enabled on its own"
    assert "network-online.target" in words(u, "Unit", "After") + words(u, "Unit", "Wants")


def test_pull_timer():
    u = parse_unit(PULL_TIMER)
    assert values(u, "Timer", "OnCalendar") or values(u, "Timer", "OnUnitInactiveSec")
    delay = one(u, "Timer", "RandomizedDelaySec")
    assert re.fullmatch(r"\d+(s|min|m|h)?", delay), delay
    assert values(u, "Timer", "Unit") in ([], ["courier-pull.service"])
    assert "timers.target" in words(u, "Install", "WantedBy")


# ---- courier-pull-mirror.service and .timer (a site relay) ----
def test_relay_service():
    u = parse_unit(RELAY_UNIT)
    assert one(u, "Service", "Type") == "oneshot"
    argv = shlex.split(one(u, "Service", "ExecStart"))
    assert argv[:2] == [INSTALLED_BIN + "courier-pull", "mirror"]
    assert option_value(argv, "--config") == "/etc/courier/relay.toml"
    fams = words(u, "Service", "RestrictAddressFamilies")
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(fams) and not any(f.startswith("~") for f in fams)
    writable = [p.lstrip("-+") for p in words(u, "Service", "ReadWritePaths")]
    writable += ["/var/lib/" + d for d in words(u, "Service", "StateDirectory")]
    writable += ["/var/log/" + d for d in words(u, "Service", "LogsDirectory")]
    assert os.path.dirname(option_value(argv, "--log-file")) in writable
    # Its own log directory, not root's /var/log/courier (which the relay user must not own).
    assert words(u, "Service", "LogsDirectory") == ["courier-relay"]
    assert option_value(argv, "--log-file") == "/var/log/courier-relay/relay.log"
    # The mirror directory and the state of the shipped example relay.toml are writable, and
    # nothing of a client's: the relay never writes an inbox.
    example = open(os.path.join(ROOT, "scripts", "examples", "relay.toml"), encoding="utf-8").read()
    for key in ("root", "state_dir"):
        m = re.search(r'^%s\s*=\s*"([^"]+)"' % key, example, re.M)
        assert m, f"scripts/examples/relay.toml has no {key}"
        assert any(m.group(1) == w or m.group(1).startswith(w + "/") for w in writable), f"{key} {m.group(1)} is not writable"
    assert "/var/lib/courier" not in writable
    # Unprivileged, without capabilities; the web server (another user) reads what it writes.
    assert one(u, "Service", "User") not in ("", "root") and values(u, "Service", "CapabilityBoundingSet") == [""]
    assert one(u, "Service", "StateDirectoryMode") == "0755"
    assert not values(u, "Install", "WantedBy"), "the service is started by the timer, not enabled on its own"
    assert "network-online.target" in words(u, "Unit", "After") + words(u, "Unit", "Wants")
    # The same hardening as the client's pull unit, key by key (not only the common set).
    pull = parse_unit(PULL_UNIT)
    for key in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateMounts", "PrivateDevices",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                "ProtectClock", "ProtectHostname", "RestrictAddressFamilies", "RestrictNamespaces", "LockPersonality",
                "MemoryDenyWriteExecute", "SystemCallArchitectures", "RestrictRealtime", "RestrictSUIDSGID", "UMask",
                "CapabilityBoundingSet", "TimeoutStartSec"):
        assert values(u, "Service", key) == values(pull, "Service", key), f"{key}= differs from courier-pull.service"


def test_relay_timer():
    u = parse_unit(RELAY_TIMER)
    assert values(u, "Timer", "OnCalendar") or values(u, "Timer", "OnUnitInactiveSec")
    delay = one(u, "Timer", "RandomizedDelaySec")
    assert re.fullmatch(r"\d+(s|min|m|h)?", delay), delay
    assert values(u, "Timer", "Unit") in ([], ["courier-pull-mirror.service"])
    assert "timers.target" in words(u, "Install", "WantedBy")


def test_pull_crontab():
    jobs = []
    for raw in open(PULL_CRONTAB, encoding="utf-8"):
        line = raw.strip()
        if line and not line.startswith("#") and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            jobs.append(line)
    assert len(jobs) == 2, jobs
    subs = []
    for line in jobs:
        fields = line.split(None, 5)
        assert len(fields) == 6 and all(CRON_FIELD.match(f) for f in fields[:5]), line
        argv = shlex.split(fields[5])
        assert argv[0] == INSTALLED_BIN + "courier-pull"
        subs.append(argv[1])
        for name in ("--config", "--log-file"):
            assert os.path.isabs(option_value(argv, name) or "/"), name
    assert subs == ["run", "mirror"]


# ---- the crontab ----
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def cron_jobs():
    jobs = []
    with open(CRONTAB, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):   # MAILTO=..., environment
                continue
            jobs.append((n, line))
    return jobs


def test_crontab_lines():
    jobs = cron_jobs()
    assert len(jobs) == 1, jobs
    for n, line in jobs:
        fields = line.split(None, 5)
        assert len(fields) == 6, f"line {n}: five time fields and a command"
        for i, fld in enumerate(fields[:5]):
            assert CRON_FIELD.match(fld), f"line {n}: time field {i + 1} {fld!r}"
        assert "%" not in fields[5], f"line {n}: cron turns an unescaped % into a newline"
        argv = shlex.split(fields[5])
        assert argv[0] == INSTALLED_BIN + "courier-stage" and argv[1] == "run"
        assert os.path.isabs(argv[0])
        assert option_value(argv, "--splay"), "a cron line should spread its start with --splay"
        for name in ("--config", "--log-file", "--metrics-file"):
            assert os.path.isabs(option_value(argv, name) or "/"), name


def test_crontab_says_cron_mails_output_and_success_is_silent():
    text = open(CRONTAB, encoding="utf-8").read().lower()
    assert "mail" in text and "nothing" in text


# ---- systemd's own parser ----
def _analyze():
    exe = shutil.which("systemd-analyze")
    if not exe:
        pytest.skip("systemd-analyze not installed (a static check; install systemd to run it)")
    return exe


def _copy_with_stub_binaries(tmp_path):
    """The units, with /usr/local/bin/courier-* pointing at executable stubs: `verify` checks
    that ExecStart's program exists, and the programs are not installed here. Nothing else is
    changed."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("courier-inboxd", "courier-stage", "courier-pull"):
        p = stubs / name
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    out = []
    for path in UNITS:
        text = open(path, encoding="utf-8").read().replace(INSTALLED_BIN + "courier-", str(stubs) + "/courier-")
        dst = units / os.path.basename(path)
        dst.write_text(text)
        out.append(str(dst))
    return out


def test_systemd_analyze_verify(tmp_path):
    exe = _analyze()
    units = _copy_with_stub_binaries(tmp_path)
    r = subprocess.run([exe, "verify", "--man=no", *units], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), \
        f"systemd-analyze verify (rc {r.returncode}):\n{r.stdout}{r.stderr}"


def test_systemd_analyze_verify_only_misses_the_uninstalled_programs():
    """On the files as shipped, the only complaint allowed is that the programs are not
    installed yet (this machine is not a client)."""
    exe = _analyze()
    r = subprocess.run([exe, "verify", "--man=no", *UNITS], capture_output=True, text=True, timeout=60)
    for line in (r.stdout + r.stderr).splitlines():
        if not line.strip():
            continue
        m = re.search(r"Command (\S+) is not executable", line)
        assert m and m.group(1).startswith(INSTALLED_BIN) and not os.path.exists(m.group(1)), line


@pytest.mark.parametrize("path,threshold", [(INBOXD_UNIT, 40), (STAGE_UNIT, 40), (PULL_UNIT, 40), (RELAY_UNIT, 40)], ids=lambda x: os.path.basename(str(x)))
def test_systemd_analyze_security_exposure(path, threshold):
    exe = _analyze()
    r = subprocess.run([exe, "security", "--offline=true", "--no-pager", f"--threshold={threshold}", path],
                       capture_output=True, text=True, timeout=60)
    if "unrecognized option" in r.stderr or "Unknown option" in r.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd 250 or later")
    last = [l for l in r.stdout.splitlines() if "Overall exposure level" in l]
    assert r.returncode == 0, f"exposure above {threshold / 10}: {last}\n{r.stderr}"


# ---- the command lines against the programs ----
def _help(program, sub):
    r = subprocess.run([os.path.join(BIN, program), sub, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _options(argv):
    return [a.split("=", 1)[0] for a in argv if a.startswith("--")]


@needs_bin
def test_command_lines_use_options_the_programs_accept():
    inboxd = shlex.split(one(parse_unit(INBOXD_UNIT), "Service", "ExecStart"))
    stage = shlex.split(one(parse_unit(STAGE_UNIT), "Service", "ExecStart"))
    cron = shlex.split(cron_jobs()[0][1].split(None, 5)[5])
    pull = shlex.split(one(parse_unit(PULL_UNIT), "Service", "ExecStart"))
    relay = shlex.split(one(parse_unit(RELAY_UNIT), "Service", "ExecStart"))
    pull_cron = [shlex.split(l.split(None, 5)[5]) for l in open(PULL_CRONTAB, encoding="utf-8")
                 if l.strip() and not l.startswith("#") and not l.startswith("MAILTO")]
    for argv in [inboxd, stage, cron, pull, relay] + pull_cron:
        program, sub = os.path.basename(argv[0]), argv[1]
        text = _help(program, sub)
        for opt in _options(argv):
            assert re.search(re.escape(opt) + r"\b", text), f"{program} {sub} has no option {opt}"


# ---- MemoryDenyWriteExecute=yes: do the programs need W+X memory? ----
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def _mdwe():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        os._exit(125)


def _run_mdwe(*argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, preexec_fn=_mdwe, **kw)


@needs_bin
def test_programs_run_without_writable_executable_memory(tmp_path):
    probe = _run_mdwe(sys.executable, "-c",
                      "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ|mmap.PROT_WRITE|mmap.PROT_EXEC)")
    if probe.returncode == 125:
        pytest.skip("prctl(PR_SET_MDWE) not supported by this kernel (Linux 6.3 or later)")
    assert probe.returncode != 0, "PR_SET_MDWE did not take effect: W+X mapping allowed"

    stage, inboxd = os.path.join(BIN, "courier-stage"), os.path.join(BIN, "courier-inboxd")
    up = os.path.join(ROOT, "Fixtures", "upstream", "virus-defs")
    ws = tmp_path
    (ws / "trust").mkdir()
    (ws / "var" / "inbox").mkdir(parents=True)
    r = _run_mdwe(stage, "keygen", "--out", ws / "stage.key")
    assert r.returncode == 0, r.stderr
    shutil.copy(ws / "stage.key.pub", ws / "trust")
    for rev in ("20261120001", "20261121001"):
        r = _run_mdwe(stage, "build", "--tree", os.path.join(up, rev), "--type", "virus-defs", "--revision", rev,
                      "--key", ws / "stage.key", "--out-dir", ws / "out")
        assert r.returncode == 0, r.stderr
    r = _run_mdwe(stage, "build", "--tree", os.path.join(up, "20261121001"), "--type", "virus-defs",
                  "--revision", "20261121001", "--key", ws / "stage.key", "--out-dir", ws / "out",
                  "--delta-from", ws / "out" / "virus-defs_20261120001.cpkg")
    assert r.returncode == 0, r.stderr
    (ws / "inboxd.toml").write_text(
        f'inbox = "{ws}/var/inbox"\ntrust = "{ws}/trust"\n[types.virus-defs]\n'
        f'test_command = ["sh", "-c", "test -f $COURIER_PATH/main.ndb"]\n'
        f'apply_command = "echo $COURIER_REVISION >> {ws}/hook.log"\n')
    for pkg in ("virus-defs_20261120001.cpkg", "virus-defs_20261121001_from_20261120001.cpkg"):
        shutil.copy(ws / "out" / pkg, ws / "var" / "inbox")
        r = _run_mdwe(inboxd, "run", "--config", ws / "inboxd.toml", "--once")
        assert r.returncode == 0, r.stderr
    assert (ws / "hook.log").read_text().split() == ["20261120001", "20261121001"]
    assert os.readlink(ws / "var" / "state" / "store" / "virus-defs" / "current") == "20261121001"


@needs_bin
def test_pull_runs_without_writable_executable_memory(tmp_path):
    """courier-pull.service has MemoryDenyWriteExecute=yes: a real pass and a relay pass over
    HTTP (async-http-client, NIO, BoringSSL loaded) under PR_SET_MDWE."""
    import functools, http.server, threading
    probe = _run_mdwe(sys.executable, "-c", "pass")
    if probe.returncode == 125:
        pytest.skip("prctl(PR_SET_MDWE) not supported by this kernel (Linux 6.3 or later)")
    pull = os.path.join(BIN, "courier-pull")
    if not os.access(pull, os.X_OK):
        pytest.skip("courier-pull not built")
    stage = os.path.join(BIN, "courier-stage")
    ws = tmp_path
    assert subprocess.run([stage, "keygen", "--out", str(ws / "stage.key")], capture_output=True).returncode == 0
    shutil.copytree(os.path.join(ROOT, "Fixtures", "upstream", "virus-defs", "20261120001"), ws / "up" / "20261120001")
    (ws / "stage.toml").write_text('outbox = "outbox"\nkey = "stage.key"\n[types.virus-defs]\nsource = "dir"\npath = "up"\n')
    r = subprocess.run([stage, "run", "--config", str(ws / "stage.toml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ws / "outbox"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        (ws / "inbox").mkdir()
        (ws / "inboxd.toml").write_text(f'inbox = "inbox"\nstate_dir = "state"\ntrust = "stage.key.pub"\n[types.virus-defs]\n')
        (ws / "pull.toml").write_text(f'inboxd_config = "inboxd.toml"\nmirrors = ["{url}"]\n')
        r = _run_mdwe(pull, "run", "--config", ws / "pull.toml", "--no-splay")
        assert r.returncode == 0, r.stderr
        assert os.listdir(ws / "inbox") == ["virus-defs_20261120001.cpkg"]
        (ws / "relay.toml").write_text(f'root = "mirror"\nupstream = ["{url}"]\ntrust = "stage.key.pub"\n')
        r = _run_mdwe(pull, "mirror", "--config", ws / "relay.toml")
        assert r.returncode == 0, r.stderr
        assert (ws / "mirror" / "virus-defs" / "20261120001" / "virus-defs_20261120001.cpkg").exists()
    finally:
        server.shutdown()
