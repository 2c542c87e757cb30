"""courier-inboxd.path and the service it starts, courier-inboxd-idle.service.

Run with `COURIER_BIN=.build/debug python3 -m pytest -q -p no:cacheprovider Tests/interop/test_systemd_path_unit.py`.
What it proves: systemd's own parser accepts both units (`systemd-analyze verify`, with the
programs replaced by stubs as test_systemd_units.py does; skipped without systemd-analyze);
the path unit watches the inbox of the example inboxd.toml with DirectoryNotEmpty= and starts
the idle service; that service runs the command the daemon accepts, with the same sandbox as
courier-inboxd.service; and that command, run here against a real inbox, applies what is there
and exits 0 with the inbox empty — the condition DirectoryNotEmpty= checks again when the
service stops. It does not start the units under a real systemd (none runs here).
"""
import os, re, shlex, shutil, subprocess, sys, time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_systemd_units import (BIN, INSTALLED_BIN, ROOT, SYSTEMD_DIR, COMMON_HARDENING, needs_bin,  # noqa: E402
                                one, parse_unit, values, words)

PATH_UNIT = os.path.join(SYSTEMD_DIR, "courier-inboxd.path")
IDLE_UNIT = os.path.join(SYSTEMD_DIR, "courier-inboxd-idle.service")
DAEMON_UNIT = os.path.join(SYSTEMD_DIR, "courier-inboxd.service")
EXAMPLE_CONFIG = os.path.join(ROOT, "scripts", "examples", "inboxd.toml")


def example_inbox():
    for line in open(EXAMPLE_CONFIG, encoding="utf-8"):
        m = re.match(r'\s*inbox\s*=\s*"([^"]+)"', line)
        if m:
            return m.group(1)
    raise AssertionError("no inbox in the example inboxd.toml")


def test_path_unit_watches_the_inbox_with_a_condition():
    u = parse_unit(PATH_UNIT)
    assert one(u, "Unit", "Description")
    # A condition systemd re-checks when the service stops, not an edge it can miss.
    assert values(u, "Path", "DirectoryNotEmpty") == [example_inbox()]
    for edge in ("PathChanged", "PathModified"):
        assert not values(u, "Path", edge), f"{edge}= loses events while the service runs"
    assert one(u, "Path", "Unit") == "courier-inboxd-idle.service"
    assert os.path.exists(IDLE_UNIT)
    assert words(u, "Install", "WantedBy"), "no [Install]: the path unit could not be enabled"
    text = open(PATH_UNIT, encoding="utf-8").read()
    for needle in ("DirectoryNotEmpty", "PathChanged", "rescan"):
        assert needle in text, f"the comments should explain the choice ({needle})"


def test_idle_service_runs_until_idle_with_the_daemons_sandbox():
    u = parse_unit(IDLE_UNIT)
    d = parse_unit(DAEMON_UNIT)
    argv = shlex.split(one(u, "Service", "ExecStart"))
    assert argv[:2] == [INSTALLED_BIN + "courier-inboxd", "run"]
    assert argv[argv.index("--config") + 1] == "/etc/courier/inboxd.toml"
    idle = argv[argv.index("--exit-when-idle") + 1]
    assert re.fullmatch(r"\d+(s|m)", idle), idle
    assert "--once" not in argv, "--once would not see what arrives during the run"
    assert one(u, "Service", "Type") == "exec"
    assert not values(u, "Service", "Restart"), "the path unit restarts it, not Restart="
    assert "courier-inboxd.service" in words(u, "Unit", "Conflicts"), "two daemons on one inbox"
    assert not values(u, "Install", "WantedBy"), "started by the path unit, never enabled itself"
    # The same sandbox as the always-on daemon: every hardening key with the same value.
    for key in list(COMMON_HARDENING) + ["ReadWritePaths", "RestrictAddressFamilies", "CapabilityBoundingSet",
                                         "KillMode", "TimeoutStopSec", "ProtectClock", "ProtectHostname",
                                         "RestrictRealtime", "RestrictSUIDSGID", "PrivateMounts"]:
        assert values(u, "Service", key) == values(d, "Service", key), f"{key}= differs from courier-inboxd.service"
    assert values(u, "Unit", "RequiresMountsFor") == values(d, "Unit", "RequiresMountsFor")


def _analyze():
    exe = shutil.which("systemd-analyze")
    if not exe:
        pytest.skip("systemd-analyze not installed")
    return exe


def test_systemd_analyze_verify(tmp_path):
    """systemd's parser on the two units (and the daemon's, which the idle service names in
    Conflicts=), with ExecStart's program replaced by an executable stub."""
    exe = _analyze()
    stub = tmp_path / "bin" / "courier-inboxd"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    paths = []
    for src in (PATH_UNIT, IDLE_UNIT, DAEMON_UNIT):
        dst = units / os.path.basename(src)
        dst.write_text(open(src, encoding="utf-8").read().replace(INSTALLED_BIN + "courier-inboxd", str(stub)))
        paths.append(str(dst))
    r = subprocess.run([exe, "verify", "--man=no", *paths], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"})
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), \
        f"systemd-analyze verify (rc {r.returncode}):\n{r.stdout}{r.stderr}"


def test_systemd_analyze_verify_catches_a_broken_path_unit(tmp_path):
    """The check above can fail: a misspelt key in the [Path] section is reported."""
    exe = _analyze()
    bad = tmp_path / "courier-inboxd.path"
    bad.write_text(open(PATH_UNIT, encoding="utf-8").read().replace("DirectoryNotEmpty=", "DirectoryNotEmptee="))
    r = subprocess.run([exe, "verify", "--man=no", str(bad)], capture_output=True, text=True, timeout=60)
    assert "DirectoryNotEmptee" in r.stdout + r.stderr


@needs_bin
def test_the_command_leaves_the_inbox_empty_and_exits_when_idle(tmp_path):
    """ExecStart as the unit has it, with the configuration and idle time pointed at a test
    client: packages in the inbox before the start are applied (the start-up rescan), a bad
    one is quarantined, the daemon exits 0 by itself, and the inbox is empty — so the path
    unit's condition is false and systemd does not start it again."""
    u = parse_unit(IDLE_UNIT)
    argv = shlex.split(one(u, "Service", "ExecStart"))
    argv[0] = os.path.join(BIN, "courier-inboxd")
    stage = os.path.join(BIN, "courier-stage")
    (tmp_path / "trust").mkdir()
    (tmp_path / "inbox").mkdir()
    subprocess.run([stage, "keygen", "--out", str(tmp_path / "stage.key")], check=True, capture_output=True)
    shutil.copy(tmp_path / "stage.key.pub", tmp_path / "trust")
    tree = tmp_path / "up" / "20261120001"
    tree.mkdir(parents=True)
    (tree / "daily.ndb").write_text("one\n")
    subprocess.run([stage, "build", "--tree", str(tree), "--type", "virus-defs", "--revision", "20261120001",
                    "--key", str(tmp_path / "stage.key"), "--out-dir", str(tmp_path / "out")], check=True, capture_output=True)
    shutil.copy(tmp_path / "out" / "virus-defs_20261120001.cpkg", tmp_path / "inbox")
    (tmp_path / "inbox" / "junk.cpkg").write_text("not a package")
    cfg = tmp_path / "inboxd.toml"
    cfg.write_text(f'inbox = "{tmp_path}/inbox"\nstate_dir = "{tmp_path}/state"\ntrust = "{tmp_path}/trust"\n[types.virus-defs]\n')
    argv[argv.index("--config") + 1] = str(cfg)
    argv[argv.index("--exit-when-idle") + 1] = "2s"
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert 2 <= took < 30, took
    assert os.listdir(tmp_path / "inbox") == [], "DirectoryNotEmpty= would start the service again"
    assert os.readlink(tmp_path / "state" / "store" / "virus-defs" / "current") == "20261120001"
    assert "junk.cpkg" in os.listdir(tmp_path / "state" / "quarantine")
    last = r.stderr.strip().splitlines()[-1]
    assert re.search(r"exiting: idle for 2\.0 s \(--exit-when-idle\); ran [0-9.]+ s; 1 applied, 1 refused", last), last
