"""The Debian package as an administrator gets it: `make deb`, lintian, then dpkg on this machine.

Run with `make test-deb` (or within `make test`). What it proves:
  - the section-5 pages name every key the configuration parsers accept, and groff finds no
    fault in any man page the package ships;
  - `make deb` builds courier_<CourierVersion>-1_<arch>.deb from the stripped release binaries
    (it runs `make release`, an up-to-date check when CI has just built them; COURIER_DEB_BIN=DIR
    packages those binaries instead and builds nothing);
  - lintian reports no error on it nor on courier-dbgsym (its whole output is printed when the
    test fails), and with courier-dbgsym installed gdb finds the symbols of a stripped program
    by its build-id (without it, none);
  - `dpkg -i` installs the programs, units, man pages, docs, examples and the one conffile,
    creates the system users courier and courier-relay and /var/lib/courier, and the installed
    `courier-stage --version` prints the code's version; `dpkg --verify` finds every file intact;
  - an upgrade to revision 2 keeps a conffile the administrator changed (without a prompt) and
    what the client keeps under /var/lib/courier;
  - `dpkg --purge` leaves no file of the package, no /var/lib/courier, no dpkg status. The
    system users stay, as Debian keeps them (a uid that owned files elsewhere is never reused);
    the test checks that and then deletes them itself.
It installs on this machine (no chroot: the maintainer scripts need adduser and a real passwd),
so it runs only as root and only when no courier package, user or /var/lib/courier is there
already, and it purges whatever it installed even when it fails. Not covered: systemd reloads
and stops (no systemd in the test machine: the scripts skip them without /run/systemd/system).
"""
import grp, os, pwd, re, shutil, stat, subprocess, time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PROGRAMS = ["courier-stage", "courier-deliver", "courier-inboxd", "courier-tuf", "courier-pull"]
USERS = ["courier", "courier-relay"]
CONFFILE = "/etc/logrotate.d/courier"
STATE_DIRS = ["/var/lib/courier", "/var/lib/courier-stage", "/var/lib/courier-relay", "/var/log/courier", "/var/log/courier-relay"]


def _version():
    with open(os.path.join(ROOT, "Sources", "CourierCore", "Format", "Version.swift"), encoding="utf-8") as f:
        m = re.search(r'static let string = "([^"]+)"', f.read())
    assert m, "no CourierVersion.string in Version.swift"
    return m.group(1)


def _run(args, timeout=900, check=True, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout[-4000:]}\nstderr:\n{p.stderr[-4000:]}")
    return p


def _installed():
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", "courier"], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _why_not():
    if os.geteuid() != 0:
        return "not root: dpkg -i, adduser and the purge need root (run make test-deb as root)"
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "lintian"):
        if shutil.which(tool) is None:
            return None  # a failure, not a skip: scripts/bootstrap.sh installs them
    status = _installed()
    if status and "not-installed" not in status:
        return f"a courier package is installed here already ({status}): the test would purge it"
    taken = [u for u in USERS if _user_exists(u)] + [d for d in STATE_DIRS if os.path.lexists(d)]
    if taken or os.path.lexists(CONFFILE):
        return f"this machine already has {', '.join(taken) or CONFFILE}: the purge would delete or leave them"
    return None


needs_root_and_clean_machine = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def _make_deb(out, revision, bin_dir, compression, debug_info=""):
    args = ["make", "-s", "--no-print-directory", "deb", f"DEB_OUT={out}", f"DEB_REVISION={revision}", f"DEB_COMPRESSION={compression}"]
    if bin_dir:
        args += [f"DEB_BIN={bin_dir}", f"DEB_DEBUG_INFO={debug_info}"]
    p = _run(args, timeout=3600, cwd=ROOT)
    deb = p.stdout.strip().splitlines()[-1]
    assert os.path.isfile(deb), p.stdout
    return deb


def _cleanup():
    """Whatever state a failed run left: the package purged, the users and directories gone."""
    subprocess.run(["dpkg", "--purge", "courier-dbgsym", "courier"], capture_output=True, stdin=subprocess.DEVNULL)
    for top in ("/etc/systemd/system", "/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked"):
        for d, _, names in os.walk(top):
            for n in names:
                if n.startswith("courier"):
                    os.unlink(os.path.join(d, n))
    for u in USERS:
        if _user_exists(u):
            subprocess.run(["deluser", "--system", "--quiet", u], capture_output=True)
        try:
            grp.getgrnam(u)
            subprocess.run(["delgroup", "--system", "--quiet", u], capture_output=True)
        except KeyError:
            pass
    for d in STATE_DIRS:
        shutil.rmtree(d, ignore_errors=True)


@needs_root_and_clean_machine
def test_deb_builds_passes_lintian_installs_upgrades_and_purges(tmp_path):
    started = time.monotonic()
    version = _version()
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "lintian"):
        assert shutil.which(tool), f"{tool} is missing: scripts/bootstrap.sh installs it"
    bin_dir = os.environ.get("COURIER_DEB_BIN")

    # The package as shipped (xz) with its -dbgsym package, then revision 2 of the same binaries
    # (gzip, no dbgsym: seconds, not minutes).
    debug_info = os.path.join(os.path.dirname(bin_dir.rstrip("/")), "debug-info") if bin_dir else ""
    deb1 = _make_deb(tmp_path / "v1", 1, bin_dir, "xz", debug_info)
    dbgsym = os.path.join(os.path.dirname(deb1), os.path.basename(deb1).replace("courier_", "courier-dbgsym_"))
    assert os.path.isfile(dbgsym), f"make deb wrote no {dbgsym}"
    assert os.path.basename(deb1) == f"courier_{version}-1_{_run(['dpkg', '--print-architecture']).stdout.strip()}.deb"
    deb2 = _make_deb(tmp_path / "v2", 2, bin_dir or os.path.join(ROOT, ".build", "release"), "gzip")
    built = time.monotonic()

    for deb in (deb1, dbgsym):
        lint = _run(["lintian", "--info", deb], check=False)
        errors = [line for line in lint.stdout.splitlines() if line.startswith(("E:", "X:"))]
        assert not errors and lint.returncode in (0, 2), f"lintian {deb} (exit {lint.returncode}):\n{lint.stdout}\n{lint.stderr}"
        print(f"lintian {deb}:\n{lint.stdout}")

    fields = _run(["dpkg-deb", "-f", deb1, "Version", "Depends"]).stdout
    assert f"Version: {version}-1" in fields
    # Only what the release binaries still link dynamically (check-release.sh): glibc and libgcc_s.
    m = re.search(r"Depends: libc6 \(>= ([0-9.]+)\), libgcc-s1 \(>= [0-9.]+\), adduser", fields)
    assert m, fields
    libc_depends = m.group(1)
    assert _run(["dpkg-deb", "-I", deb1, "conffiles"]).stdout.split() == [CONFFILE]

    try:
        # ---- install ----
        _run(["dpkg", "-i", deb1])
        assert _installed() == f"install ok installed {version}-1"
        files = [f for f in _run(["dpkg", "-L", "courier"]).stdout.splitlines() if f and f != "/."]
        for p in PROGRAMS:
            path = f"/usr/bin/{p}"
            assert path in files and os.access(path, os.X_OK)
            assert os.path.isfile(f"/usr/share/man/man1/{p}.1.gz"), p
        for page in ("courier-stage.toml", "courier-inboxd.toml", "courier-policy.toml"):
            assert os.path.isfile(f"/usr/share/man/man5/{page}.5.gz"), page
        for unit in ("courier-inboxd.service", "courier-stage.service", "courier-stage.timer", "courier-pull-mirror.service"):
            with open(f"/usr/lib/systemd/system/{unit}", encoding="utf-8") as f:
                text = f.read()
            assert "/usr/local/" not in text, unit
            assert unit.endswith(".timer") or "ExecStart=/usr/bin/courier-" in text, unit
        for doc in ("copyright", "changelog.Debian.gz", "OPERATIONS.md", "examples/inboxd.toml", "examples/stage.toml"):
            assert os.path.isfile(f"/usr/share/doc/courier/{doc}"), doc
        assert _run(["/usr/bin/courier-stage", "--version"]).stdout.strip() == version
        # The glibc the programs need, by their version needs (GLIBC_ABI_DT_RELR: 2.36, as libc6's
        # symbols file says), is at most what Depends: promises.
        for p in PROGRAMS:
            needs = set(re.findall(r"GLIBC_(2\.[0-9]+|ABI_DT_RELR)", _run(["readelf", "-V", f"/usr/bin/{p}"]).stdout))
            for v in {"2.36" if n == "ABI_DT_RELR" else n for n in needs}:
                ok = _run(["dpkg", "--compare-versions", v, "le", libc_depends], check=False).returncode == 0
                assert ok, f"{p} needs glibc {v}, Depends: says libc6 (>= {libc_depends})"
        assert _run(["dpkg", "--verify", "courier"]).stdout == ""
        if shutil.which("logrotate"):
            _run(["logrotate", "--debug", CONFFILE])
        for u in USERS:
            pw = pwd.getpwnam(u)
            assert pw.pw_uid < 1000 and pw.pw_shell == "/usr/sbin/nologin", pw
            assert grp.getgrgid(pw.pw_gid).gr_name == u
        for d in ("/var/lib/courier", "/var/lib/courier/inbox"):
            st = os.stat(d)
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755, d
        uids = {u: pwd.getpwnam(u).pw_uid for u in USERS}

        # ---- the debug symbols: gdb finds them by the stripped binary's build-id ----
        if shutil.which("gdb"):
            probe = ["gdb", "-batch", "-nx", "-ex", "info address courier_tuf_main", "/usr/bin/courier-tuf"]
            out = (lambda r: r.stdout + r.stderr)(_run(probe, timeout=300, check=False))
            assert "No symbol" in out, f"the stripped binary has symbols of its own:\n{out}"
            _run(["dpkg", "-i", dbgsym])
            out = (lambda r: r.stdout + r.stderr)(_run(probe, timeout=300, check=False))
            assert "Symbol \"courier_tuf_main\" is" in out, f"gdb found no symbols in courier-dbgsym:\n{out}"
            _run(["dpkg", "--purge", "courier-dbgsym"])
        else:
            _run(["dpkg", "-i", dbgsym])
            _run(["dpkg", "--purge", "courier-dbgsym"])

        # ---- the administrator enables a timer: the link survives the upgrade, not the purge ----
        wants = "/etc/systemd/system/timers.target.wants/courier-pull.timer"
        if shutil.which("systemctl"):
            _run(["systemctl", "enable", "courier-pull.timer"])
            assert os.path.islink(wants), "systemctl enable made no link"

        # ---- upgrade: a changed conffile and the client's data survive, without a prompt ----
        with open(CONFFILE, "a", encoding="utf-8") as f:
            f.write("# changed by the administrator\n")
        with open("/var/lib/courier/inbox/kept.cpkg", "w", encoding="utf-8") as f:
            f.write("data\n")
        _run(["dpkg", "-i", deb2], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        assert _installed() == f"install ok installed {version}-2"
        with open(CONFFILE, encoding="utf-8") as f:
            assert f.read().endswith("# changed by the administrator\n")
        assert not [n for n in os.listdir("/etc/logrotate.d") if n.startswith("courier.dpkg")]
        assert os.path.isfile("/var/lib/courier/inbox/kept.cpkg")
        assert {u: pwd.getpwnam(u).pw_uid for u in USERS} == uids, "the upgrade created the users again"
        if shutil.which("systemctl"):
            assert os.path.islink(wants), "the upgrade dropped the administrator's enable link"

        # ---- purge: nothing of the package stays ----
        _run(["dpkg", "--purge", "courier"])
        assert _installed() is None or "not-installed" in _installed()
        left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
        assert not left, f"purge left {left}"
        left_dirs = [f for f in files if os.path.isdir(f) and "courier" in f]
        assert not left_dirs, f"purge left {left_dirs}"
        assert not os.path.lexists(CONFFILE) and not os.path.lexists("/var/lib/courier")
        # The enable links and deb-systemd-helper's records of them (postrm purge).
        links = [
            os.path.join(d, n)
            for top in ("/etc/systemd/system", "/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked")
            for d, _, names in os.walk(top)
            for n in names
            if "courier" in n
        ]
        assert not links, f"purge left {links}"
        # Debian keeps system users on purge; so does this package (postrm says why).
        assert all(_user_exists(u) for u in USERS)
    finally:
        _cleanup()
    assert not any(_user_exists(u) for u in USERS)
    assert not any(os.path.lexists(d) for d in STATE_DIRS)
    print(f"test_deb: built in {built - started:.0f} s, total {time.monotonic() - started:.0f} s")


# ---- the section-5 pages against the parsers ----
# page: (parser sources, keys that are tables the page shows as [name] / [name.NAME] headings)
SECTION5 = {
    "courier-stage.toml.5": (["Sources/CourierStage/Config/StageConfig.swift"], {"types", "http"}),
    "courier-inboxd.toml.5": (["Sources/CourierInbox/Config/InboxConfig.swift"], {"types"}),
    "courier-policy.toml.5": (["Sources/CourierDeliver/Targets/Policy.swift"], {"groups"}),
}


def _constant(name):
    """The string literals of `static let NAME = [...]` anywhere in Sources (e.g. transferKeys)."""
    for d, _, names in os.walk(os.path.join(ROOT, "Sources")):
        for n in names:
            if n.endswith(".swift"):
                with open(os.path.join(d, n), encoding="utf-8") as f:
                    m = re.search(r"static let " + name + r"\s*=\s*\[(.*?)\]", f.read(), re.S)
                if m:
                    return set(re.findall(r'"([a-z_]+)"', m.group(1)))
    pytest.fail(f"no static let {name} in Sources")


def _parser_keys(path):
    """Every key an `allow(...)` call of the parser accepts: its literals and the constants it adds."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        src = f.read()
    keys = set()
    for m in re.finditer(r"\ballow\(", src):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(src[i], 0)
            i += 1
        call = src[m.end() : i - 1]
        keys |= set(re.findall(r'"([a-z_]+)"', call))
        for const in re.findall(r"\b([a-z][A-Za-z]*Keys)\b", call):
            keys |= _constant(const)
    assert keys, f"no allow(...) in {path}"
    return keys


def _documented_keys(page):
    """Keys the page marks as interactive names (.Ic), as in `.It Ic url No (or Ic urls )` or
    `.It Ic ca_file , ca_dir , ca_mode`."""
    with open(os.path.join(ROOT, "man", page), encoding="utf-8") as f:
        lines = [l for l in f if l.startswith((".It Ic", ".Ic"))]
    names = [m for l in lines for m in re.findall(r"\bIc\s+([a-z_]+(?:\s*,\s*[a-z_]+)*)", l)]
    return {w for n in names for w in re.findall(r"[a-z_]+", n)}


@pytest.mark.parametrize("page", sorted(SECTION5))
def test_section5_page_names_every_key_the_parser_accepts(page):
    sources, tables = SECTION5[page]
    accepted = set().union(*(_parser_keys(p) for p in sources)) - tables
    missing = accepted - _documented_keys(page)
    assert not missing, f"man/{page} does not document {sorted(missing)}, which {', '.join(sources)} accepts"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_man_pages_have_no_groff_warnings():
    pages = sorted(n for n in os.listdir(os.path.join(ROOT, "man")) if re.search(r"\.[15]$", n))
    assert {"courier-stage.toml.5", "courier-inboxd.toml.5", "courier-policy.toml.5"} <= set(pages)
    for n in pages:
        p = _run(["groff", "-mandoc", "-ww", "-z", os.path.join(ROOT, "man", n)], check=False)
        assert p.returncode == 0 and p.stderr == "", f"groff on man/{n}:\n{p.stderr}"
