"""Interop tests: scripts/pycpkg.py (written from docs/FORMAT.md alone) against the Swift tools.

Run with `python3 -m pytest -q Tests/interop`. The Swift binaries come from $COURIER_BIN
(default /tmp/courier-bin): courier-stage, courier-deliver, courier-inboxd.
Needs the pip packages `pytest` and `cryptography`; `zstandard` is optional (zstd cases skip without it).
"""
import base64, bz2, gzip, hashlib, io, json, lzma, os, random, re, shutil, stat, subprocess, sys, tarfile, time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "pycpkg.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
sys.dont_write_bytecode = True  # no scripts/__pycache__ in the repository
import pycpkg  # noqa: E402

BIN = os.environ.get("COURIER_BIN", "/tmp/courier-bin")
STAGE, DELIVER, INBOXD = (os.path.join(BIN, n) for n in ("courier-stage", "courier-deliver", "courier-inboxd"))
pytestmark = pytest.mark.skipif(not all(os.access(p, os.X_OK) for p in (STAGE, DELIVER, INBOXD)),
                                reason=f"Swift binaries not found in {BIN} (set COURIER_BIN)")
ZSTD = pytest.param("zstd", marks=pytest.mark.skipif(pycpkg.zstandard is None, reason="zstandard not installed"))
COMPRESSIONS = ["gzip", ZSTD, "none"]
DAY = 86400


# ---- helpers ----
def run(*cmd):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)


def py(*args):
    return run(sys.executable, SCRIPT, *args)


def assert_ok(res):
    assert res.returncode == 0 and res.stdout.startswith("OK"), f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"


def assert_fail(res, code=None):
    assert res.returncode != 0, f"accepted:\n{res.stdout}"
    assert any(line.startswith("FAIL") for line in res.stdout.splitlines()), f"no FAIL line:\n{res.stdout}\n{res.stderr}"
    if code is not None:
        assert res.returncode == code, res.stdout


def swift_verify(trust, pkg, *extra):
    return run(DELIVER, "verify", "--trust", trust, *extra, pkg)


def swift_build(tree, rev, key, out_dir, *extra, base_rev=None, type_="virus-defs"):
    """courier-stage build; returns the package path named as FORMAT.md §7 says."""
    res = run(STAGE, "build", "--tree", tree, "--type", type_, "--revision", rev, "--key", key, "--out-dir", out_dir, *extra)
    assert res.returncode == 0, res.stderr
    path = os.path.join(out_dir, f"{type_}_{rev}.cpkg" if base_rev is None else f"{type_}_{rev}_from_{base_rev}.cpkg")
    assert os.path.isfile(path), os.listdir(out_dir)
    return path


def write(root, rel, data, mode=0o644):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


LONG = "/".join(["x" * 60, "y" * 60, "long-name.rules"])  # > 100 bytes: needs a pax (or GNU) long name


def make_tree(root, version=1):
    """Revision 1, and revision 2 = modified, added, removed, mode-only change, file becomes a directory."""
    rnd = random.Random(version)
    write(root, "defs/main.db", random.Random(0).randbytes(300_000))
    write(root, "defs/daily.db", rnd.randbytes(50_000), 0o640)
    write(root, "empty", b"")
    write(root, "readme.txt", b"private notes\n", 0o600)
    write(root, LONG, b"alert any any\n")
    write(root, "bin/scan", b"#!/bin/sh\necho scan\n", 0o755 if version == 1 else 0o700)
    if version == 1:
        write(root, "old/gone.txt", b"bye\n")
        write(root, "conf", b"plain file in r1\n")
    else:
        write(root, "new/added.txt", b"hello\n")
        write(root, "conf/x", b"directory in r2\n")
    return root


def snapshot(root):
    """Files with mode and bytes, and directories (which extraction creates 0755)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            full = os.path.join(d, n)
            st, rel = os.lstat(full), os.path.relpath(full, root)
            assert stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode), rel
            out[rel] = "dir" if stat.S_ISDIR(st.st_mode) else (st.st_mode & 0o7777, open(full, "rb").read())
    return out


def assert_same_tree(got, want):
    g, w = snapshot(got), snapshot(want)
    assert {k for k, v in g.items() if v != "dir"} == {k for k, v in w.items() if v != "dir"}
    assert g == w
    for d, dirs, _ in os.walk(got):
        for n in dirs:
            assert stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode) == 0o755, f"{n}: directories are created 0755"


def recompress(tar_bytes, compression):
    if compression == "gzip":
        return gzip.compress(tar_bytes)
    if compression == "zstd":
        return pycpkg.zstandard.ZstdCompressor(level=3).compress(tar_bytes)
    return tar_bytes


def tamper_payload(pkg, needle, compression="none"):
    """Flip one byte of a payload file inside an uncompressed package, then compress it as asked."""
    data = bytearray(open(pkg, "rb").read())
    at = data.find(needle)
    assert at > 0 and data.find(needle, at + 1) < 0
    data[at] ^= 0x01
    open(pkg, "wb").write(recompress(bytes(data), compression))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    res = run(STAGE, "keygen", "--out", d / "swift.key")
    assert res.returncode == 0, res.stderr
    for name in ("py", "other", "second"):
        assert py("keygen", d / f"{name}.key").returncode == 0
    return {n: str(d / f"{n}.key") for n in ("swift", "py", "other", "second")} | {"dir": d, "swift_out": res.stdout}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    d = tmp_path_factory.mktemp("trees")
    return str(make_tree(str(d / "r1"), 1)), str(make_tree(str(d / "r2"), 2))


# ---- Python writes, Swift reads ----
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_python_full_is_accepted_and_extracted_by_swift(tmp_path, keys, trees, compression):
    pkg = tmp_path / "virus-defs_20261121001.cpkg"
    res = py("build", "--tree", trees[0], "--type", "virus-defs", "--revision", "20261121001",
             "--key", keys["py"], "--out", pkg, "--compression", compression)
    assert res.returncode == 0, res.stderr
    magic = open(pkg, "rb").read(4)
    assert {"gzip": magic[:2] == b"\x1f\x8b", "zstd": magic == b"\x28\xb5\x2f\xfd", "none": magic[:2] == b"co"}[compression]
    res = swift_verify(keys["py"] + ".pub", pkg)
    assert_ok(res)
    kid = pycpkg.keyid(pycpkg.parse_pub(open(keys["py"] + ".pub").read(), "pub"))
    assert kid in res.stdout and "virus-defs 20261121001 full" in res.stdout
    res = run(INBOXD, "extract", "--trust", keys["py"] + ".pub", "--into", tmp_path / "out", pkg)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_same_tree(tmp_path / "out", trees[0])


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_python_delta_is_applied_by_swift(tmp_path, keys, trees, compression):
    full, delta = tmp_path / "virus-defs_1.cpkg", tmp_path / "virus-defs_2_from_1.cpkg"
    assert py("build", "--tree", trees[0], "--type", "virus-defs", "--revision", "1", "--key", keys["py"],
              "--out", full, "--compression", compression).returncode == 0
    res = py("build", "--tree", trees[1], "--type", "virus-defs", "--revision", "2", "--key", keys["py"], "--out", delta,
             "--delta-from-manifest", full, "--compression", compression)
    assert res.returncode == 0, res.stderr
    m, _ = pycpkg.read_package(str(delta), keys["py"] + ".pub")
    assert (m["kind"], m["base"]) == ("delta", 1)
    assert m["changed"] == ["bin/scan", "conf/x", "defs/daily.db", "new/added.txt"]
    assert m["removed"] == ["conf", "old/gone.txt"]
    assert_ok(swift_verify(keys["py"] + ".pub", delta))
    base, out = tmp_path / "base", tmp_path / "out"
    assert run(INBOXD, "extract", "--trust", keys["py"] + ".pub", "--into", base, full).returncode == 0
    before = snapshot(base)
    res = run(INBOXD, "extract", "--trust", keys["py"] + ".pub", "--into", out, "--base", base, delta)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_same_tree(out, trees[1])
    assert snapshot(base) == before, "the base tree must not be modified"


# ---- Swift writes, Python reads ----
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_swift_packages_are_accepted_and_applied_by_python(tmp_path, keys, trees, compression):
    out, pub = tmp_path / "outbox", keys["swift"] + ".pub"
    full = swift_build(trees[0], 20261121001, keys["swift"], out, "--compression", compression)
    delta = swift_build(trees[1], 20261121002, keys["swift"], out, "--compression", compression, "--delta-from", full,
                        base_rev=20261121001)
    for pkg, kind in ((full, "full"), (delta, "delta")):
        res = py("verify", "--trust", pub, pkg)
        assert_ok(res)
        assert f"virus-defs {os.path.basename(pkg).split('_')[1].split('.')[0]} {kind}" in res.stdout
    assert_ok(py("extract", "--trust", pub, "--into", tmp_path / "r1", full))
    assert_same_tree(tmp_path / "r1", trees[0])
    assert_ok(py("extract", "--trust", pub, "--into", tmp_path / "r2", "--base", tmp_path / "r1", delta))
    assert_same_tree(tmp_path / "r2", trees[1])
    # Both implementations agree on what a delta carries ("new or different", incl. a mode-only change).
    # courier-stage writes format 2 deltas by default: `changed` holds objects (test_format2.py).
    m, _ = pycpkg.read_package(delta, pub)
    assert m["format"] == 2
    assert [c["path"] for c in m["changed"]] == ["bin/scan", "conf/x", "defs/daily.db", "new/added.txt"]
    assert m["removed"] == ["conf", "old/gone.txt"] and m["base"] == 20261121001


def test_mixed_delta_chains(tmp_path, keys, trees):
    """A delta written by one implementation against a full package written by the other."""
    pub = keys["swift"] + ".pub"
    py_full = tmp_path / "virus-defs_1.cpkg"
    pycpkg.build(trees[0], "virus-defs", 1, keys["swift"], str(py_full), compression="gzip")
    sw_delta = swift_build(trees[1], 2, keys["swift"], tmp_path / "sw", "--delta-from", py_full, "--compression", "gzip",
                           base_rev=1)
    sw_full = swift_build(trees[0], 1, keys["swift"], tmp_path / "sw", "--compression", "gzip")
    py_delta = tmp_path / "virus-defs_2_from_1.cpkg"
    pycpkg.build(trees[1], "virus-defs", 2, keys["swift"], str(py_delta), delta_from=sw_full, compression="gzip")
    for full, delta, name in ((py_full, sw_delta, "a"), (sw_full, py_delta, "b")):
        assert_ok(swift_verify(pub, delta))
        assert run(INBOXD, "extract", "--trust", pub, "--into", tmp_path / f"{name}1", full).returncode == 0
        res = run(INBOXD, "extract", "--trust", pub, "--into", tmp_path / f"{name}2", "--base", tmp_path / f"{name}1", delta)
        assert res.returncode == 0, res.stdout + res.stderr
        assert_same_tree(tmp_path / f"{name}2", trees[1])
        assert_ok(py("extract", "--trust", pub, "--into", tmp_path / f"{name}3", "--base", tmp_path / f"{name}1", delta))
        assert_same_tree(tmp_path / f"{name}3", trees[1])


# ---- keys in both directions ----
def test_key_formats_are_interchangeable(tmp_path, keys, trees):
    sec = open(keys["py"]).read()
    assert re.fullmatch(r"courier-ed25519-secret-v1 [A-Za-z0-9+/]{43}=\n", sec)
    assert stat.S_IMODE(os.stat(keys["py"]).st_mode) == 0o600
    assert re.fullmatch(r"courier-ed25519-v1 [A-Za-z0-9+/]{43}=( .*)?\n", open(keys["py"] + ".pub").read())
    assert stat.S_IMODE(os.stat(keys["swift"]).st_mode) == 0o600
    swift_kid = pycpkg.keyid(pycpkg.parse_pub(open(keys["swift"] + ".pub").read(), "pub"))
    assert swift_kid in keys["swift_out"], "Swift and Python compute the same key id"
    # A Python key signs in the Swift builder; both verifiers accept with the Python .pub.
    pkg = swift_build(trees[0], 7, keys["py"], tmp_path / "a", "--compression", "gzip")
    assert_ok(swift_verify(keys["py"] + ".pub", pkg))
    assert_ok(py("verify", "--trust", keys["py"] + ".pub", pkg))
    # A Swift key signs in the Python builder; both verifiers accept with the Swift .pub.
    pkg = tmp_path / "b.cpkg"
    pycpkg.build(trees[0], "virus-defs", 7, keys["swift"], str(pkg), compression="gzip")
    res = swift_verify(keys["swift"] + ".pub", pkg)
    assert_ok(res)
    assert swift_kid in res.stdout
    assert_ok(py("verify", "--trust", keys["swift"] + ".pub", pkg))


def trust_dir(tmp_path, keys, names, revoked=""):
    d = tmp_path / "trust"
    d.mkdir()
    for n in names:
        shutil.copy(keys[n] + ".pub", d / f"{n}.pub")
    if revoked:
        (d / "revoked").write_text(revoked)
    return str(d)


def kid(keys, name):
    return pycpkg.keyid(pycpkg.parse_pub(open(keys[name] + ".pub").read(), name))


# What the spec leaves open to writers: readers must accept all of these.
LATITUDE = {
    "unknown manifest key": dict(extra={"x-future": {"a": 1}}),
    "indented manifest JSON": dict(json_indent=2),
    "extra signature by an unknown key": dict(extra_keys="other"),
    "payload in reverse order": dict(reverse_payload=True),
    "GNU long-name headers": dict(tar_format=tarfile.GNU_FORMAT),
}


@pytest.mark.parametrize("variant", LATITUDE)
def test_swift_accepts_what_the_spec_allows(tmp_path, keys, trees, variant):
    kw = dict(LATITUDE[variant])
    if "extra_keys" in kw:
        kw["extra_keys"] = [pycpkg.load_secret(keys[kw["extra_keys"]])]
    pkg = tmp_path / "p.cpkg"
    pycpkg.build(trees[0], "virus-defs", 3, keys["py"], str(pkg), compression="gzip", **kw)
    assert_ok(swift_verify(keys["py"] + ".pub", pkg))
    assert run(INBOXD, "extract", "--trust", keys["py"] + ".pub", "--into", tmp_path / "out", pkg).returncode == 0
    assert_same_tree(tmp_path / "out", trees[0])


def test_threshold_and_trust_directory(tmp_path, keys, trees):
    pkg = tmp_path / "p.cpkg"
    pycpkg.build(trees[0], "virus-defs", 3, keys["py"], str(pkg), extra_keys=[pycpkg.load_secret(keys["second"])])
    trust = trust_dir(tmp_path, keys, ["py", "second"])
    for verify in (lambda *a: swift_verify(trust, pkg, *a), lambda *a: py("verify", "--trust", trust, *a, pkg)):
        assert_ok(verify("--threshold", "2"))
        assert_fail(verify("--threshold", "3"))


def test_non_ascii_paths(tmp_path, keys):
    """§3.2: paths are UTF-8, whatever the locale the tools run under (040b1ec failed here under C.UTF-8)."""
    tree = tmp_path / "tree"
    write(str(tree), "défs/règles-ü.txt", b"utf-8 name\n")
    write(str(tree), "日本/ファイル", b"more\n", 0o600)
    pkg = tmp_path / "p.cpkg"
    pycpkg.build(str(tree), "virus-defs", 3, keys["py"], str(pkg), compression="gzip")
    assert_ok(swift_verify(keys["py"] + ".pub", pkg))
    assert run(INBOXD, "extract", "--trust", keys["py"] + ".pub", "--into", tmp_path / "x", pkg).returncode == 0
    assert_same_tree(tmp_path / "x", tree)
    spkg = swift_build(str(tree), 4, keys["swift"], tmp_path / "o", "--compression", "gzip")
    assert_ok(py("extract", "--trust", keys["swift"] + ".pub", "--into", tmp_path / "y", spkg))
    assert_same_tree(tmp_path / "y", tree)


def test_canonically_equal_names_are_two_paths(tmp_path, keys):
    """§8 (issue #11.2): NFC and NFD spellings are two directories / two files, in both directions."""
    tree = tmp_path / "tree"
    for rel, data in [("caf\u00e9/a", b"A\n"), ("cafe\u0301/b", b"B\n"), ("\u00e9.txt", b"nfc\n"), ("e\u0301.txt", b"nfd\n")]:
        write(str(tree), rel, data)
    pkg = tmp_path / "p.cpkg"
    pycpkg.build(str(tree), "virus-defs", 3, keys["py"], str(pkg), compression="gzip")
    assert_ok(swift_verify(keys["py"] + ".pub", pkg))
    assert run(INBOXD, "extract", "--trust", keys["py"] + ".pub", "--into", tmp_path / "x", pkg).returncode == 0
    assert_same_tree(tmp_path / "x", tree)
    assert sorted(os.listdir(tmp_path / "x")) == sorted(os.listdir(tree)) and len(os.listdir(tree)) == 4
    spkg = swift_build(str(tree), 4, keys["swift"], tmp_path / "o", "--compression", "gzip")
    assert_ok(py("extract", "--trust", keys["swift"] + ".pub", "--into", tmp_path / "y", spkg))
    assert_same_tree(tmp_path / "y", tree)


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("tail", ["garbage", "zeros", "second archive"])
def test_both_readers_refuse_bytes_after_the_archive(tmp_path, keys, trees, compression, tail):
    """§1 (issue #11.3): nothing after the compressed stream; only zeros after the end-of-archive block."""
    good = tmp_path / "good.cpkg"
    pycpkg.build(trees[0], "virus-defs", 3, keys["py"], str(good), compression=compression)
    data = open(good, "rb").read()
    extra = {"garbage": random.Random(7).randbytes(3000), "zeros": bytes(1024),
             "second archive": data}[tail]
    pkg = tmp_path / "t.cpkg"
    pkg.write_bytes(data + extra)
    trust = keys["py"] + ".pub"
    for who, res in {"swift": swift_verify(trust, pkg), "python": py("verify", "--trust", trust, pkg)}.items():
        if compression == "none" and tail == "zeros":
            assert_ok(res)   # zero blocks after the end-of-archive block are tar padding
        else:
            assert res.returncode != 0 and res.stdout.startswith("FAIL"), f"{who} accepted {tail}: {res.stdout}"


def test_both_readers_refuse_stacked_filters_and_unknown_type_flags(tmp_path, keys, trees):
    """§1/§2 (issue #11.3): gzip around zstd, a zstd skippable frame first, a 'Z' type flag."""
    if pycpkg.zstandard is None:
        pytest.skip("zstandard not installed")
    good = tmp_path / "good.cpkg"
    pycpkg.build(trees[0], "virus-defs", 3, keys["py"], str(good), compression="none")
    tar = open(good, "rb").read()
    z = pycpkg.zstandard.ZstdCompressor(level=3).compress(tar)
    flagged = bytearray(tar)
    off = 0
    while flagged[off]:   # the first payload header: type flag 'Z', checksum fixed
        name = bytes(flagged[off:off + 100]).rstrip(b"\0")
        size = int(bytes(flagged[off + 124:off + 136]).strip(b"\0 ") or b"0", 8)
        if name.startswith(b"payload/"):
            flagged[off + 156] = ord("Z")
            flagged[off + 148:off + 156] = b" " * 8
            flagged[off + 148:off + 156] = b"%06o\0 " % sum(flagged[off:off + 512])
            break
        off += 512 + (size + 511) // 512 * 512
    trust = keys["py"] + ".pub"
    for kind, data in {"gzip around zstd": gzip.compress(z), "skippable frame first": bytes.fromhex("502a4d1804000000") + b"abcd" + z,
                       "type flag Z": bytes(flagged)}.items():
        pkg = tmp_path / "h.cpkg"
        pkg.write_bytes(data)
        for who, res in {"swift": swift_verify(trust, pkg), "python": py("verify", "--trust", trust, pkg)}.items():
            assert res.returncode != 0 and res.stdout.startswith("FAIL"), f"{who} accepted {kind}: {res.stdout}"


# ---- negative cases, Python writes, Swift (and Python) refuse ----
def py_negative(tmp_path, keys, trees, case, compression):
    pkg, now = tmp_path / "bad.cpkg", int(time.time())
    trust, kw = keys["py"] + ".pub", {}
    if case == "tampered payload byte":
        pycpkg.build(trees[0], "virus-defs", 3, keys["py"], str(pkg), compression="none")
        tamper_payload(pkg, b"private notes", compression)
        return pkg, trust
    if case == "signed by a different key":
        kw["key"] = keys["other"]
    elif case == "expired":
        kw.update(created=now - 40 * DAY, lifetime=30 * DAY)
    elif case == "created in the future":
        kw.update(created=now + DAY)
    elif case == "revoked key (id in revoked file)":
        trust = trust_dir(tmp_path, keys, ["py", "second"], f"# rotated out\n{kid(keys, 'py')}\n")
        kw["extra_keys"] = [pycpkg.load_secret(keys["second"])]
    elif case == "revoked key (.pub in revoked dir)":
        trust = trust_dir(tmp_path, keys, ["py", "second"])
        os.mkdir(os.path.join(trust, "revoked"))
        shutil.copy(keys["py"] + ".pub", os.path.join(trust, "revoked", "old.pub"))
        kw["extra_keys"] = [pycpkg.load_secret(keys["second"])]
    pycpkg.build(trees[0], "virus-defs", 3, kw.pop("key", keys["py"]), str(pkg), compression=compression, **kw)
    return pkg, trust


NEGATIVES = ["tampered payload byte", "signed by a different key", "expired", "created in the future",
             "revoked key (id in revoked file)", "revoked key (.pub in revoked dir)"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("case", NEGATIVES)
def test_swift_refuses_bad_python_packages(tmp_path, keys, trees, case, compression):
    pkg, trust = py_negative(tmp_path, keys, trees, case, compression)
    assert_fail(swift_verify(trust, pkg))
    assert_fail(py("verify", "--trust", trust, pkg))
    res = run(INBOXD, "extract", "--trust", trust, "--into", tmp_path / "out", pkg)
    assert res.returncode != 0 and not (os.path.exists(tmp_path / "out") and os.listdir(tmp_path / "out"))


# ---- negative cases, Swift writes, Python refuses ----
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_python_refuses_bad_swift_packages(tmp_path, keys, trees, compression):
    pub = keys["swift"] + ".pub"
    pkg = swift_build(trees[0], 5, keys["swift"], tmp_path / "o", "--compression", "none")
    created = pycpkg.parse_time(pycpkg.read_package(pkg, pub)[0]["created"], "created")
    assert_fail(py("verify", "--trust", pub, "--now", pycpkg.fmt_time(created + 30 * DAY + 301), pkg), 8)
    assert_ok(py("verify", "--trust", pub, "--now", pycpkg.fmt_time(created + 30 * DAY + 299), pkg))
    assert_fail(py("verify", "--trust", pub, "--now", pycpkg.fmt_time(created - 301), pkg), 8)
    assert_fail(py("verify", "--trust", keys["py"] + ".pub", pkg), 7)  # signed by a key we do not trust
    assert_fail(py("verify", "--trust", trust_dir(tmp_path, keys, ["swift", "py"], kid(keys, "swift") + "\n"), pkg), 7)
    other = swift_build(trees[0], 6, keys["other"], tmp_path / "o", "--compression", compression)
    assert_fail(py("verify", "--trust", pub, other), 7)
    tamper_payload(pkg, b"private notes", compression)
    assert_fail(py("verify", "--trust", pub, pkg), 11)
    assert_fail(swift_verify(pub, pkg))
    res = py("extract", "--trust", pub, "--into", tmp_path / "x", pkg)
    assert_fail(res, 11)
    assert not os.path.exists(tmp_path / "x") and not [n for n in os.listdir(tmp_path) if n.startswith(".pycpkg")]


# ---- hostile but correctly signed packages: both readers must refuse (FORMAT.md §2, §3) ----
def raw_package(path, key, manifest, entries, manifest_bytes=None, first=None):
    mb = manifest_bytes or json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    sk = pycpkg.load_secret(key)
    sig = dict(algorithm="ed25519", keyid=pycpkg.keyid(sk.public_key().public_bytes_raw()),
               signature=base64.b64encode(sk.sign(pycpkg.PREFIX + mb)).decode())
    sb = json.dumps({"format": 1, "signatures": [sig]}).encode()
    head = first or [(pycpkg.MANIFEST, mb, 0o644, tarfile.REGTYPE), (pycpkg.SIGS, sb, 0o644, tarfile.REGTYPE)]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode, typ in head + entries:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.type, ti.linkname = len(data) if typ == tarfile.REGTYPE else 0, mode, typ, "x"
            tf.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)


def good_manifest():
    now = int(time.time())
    files = [("a.txt", b"hello\n", "0644"), ("bin/x", b"x", "0755")]
    return dict(format=1, type="virus-defs", revision=9, kind="full", created=pycpkg.fmt_time(now),
                expires=pycpkg.fmt_time(now + DAY), provenance={"tool": "test"},
                files=[dict(path=p, size=len(d), sha256=hashlib.sha256(d).hexdigest(), mode=m)
                       for p, d, m in files]), [("payload/" + p, d, int(m, 8), tarfile.REGTYPE) for p, d, m in files]


def _set(**kv):
    return lambda m, e: m.update(kv)


HOSTILE = {
    "valid (control)": None,
    "symlink entry": lambda m, e: e.append(("payload/link", b"", 0o777, tarfile.SYMTYPE)),
    "hard link entry": lambda m, e: e.append(("payload/hard", b"", 0o644, tarfile.LNKTYPE)),
    "directory entry": lambda m, e: e.append(("payload/bin/", b"", 0o755, tarfile.DIRTYPE)),
    "fifo entry": lambda m, e: e.append(("payload/fifo", b"", 0o644, tarfile.FIFOTYPE)),
    "setuid bit": lambda m, e: e.__setitem__(1, (e[1][0], e[1][1], 0o4755, tarfile.REGTYPE)),
    "mode differs": lambda m, e: e.__setitem__(1, (e[1][0], e[1][1], 0o644, tarfile.REGTYPE)),
    "duplicate payload entry": lambda m, e: e.append(e[0]),
    "payload not in manifest": lambda m, e: e.append(("payload/extra", b"x", 0o644, tarfile.REGTYPE)),
    "carried file missing": lambda m, e: e.pop(),
    "entry outside payload/": lambda m, e: e.append(("other/x", b"x", 0o644, tarfile.REGTYPE)),
    "traversal path": lambda m, e: (m["files"].insert(0, dict(m["files"][1], path="../x")),
                                    e.append(("payload/../x", b"x", 0o755, tarfile.REGTYPE))),
    "files unsorted": lambda m, e: m["files"].reverse(),
    "file is also a directory": lambda m, e: (m["files"].insert(1, dict(m["files"][1], path="bin")),
                                              e.append(("payload/bin", b"x", 0o755, tarfile.REGTYPE))),
    "format 2": _set(format=2),
    "revision 0": _set(revision=0),
    "revision 2^64": _set(revision=2**64),
    "revision as string": _set(revision="9"),
    "bad type name": _set(type="Virus-Defs"),
    "expires equals created": lambda m, e: m.update(expires=m["created"]),
    "full with base": _set(base=1),
    "delta without removed": _set(kind="delta", base=1, changed=["a.txt", "bin/x"]),
    "delta base not below revision": _set(kind="delta", base=9, changed=["a.txt", "bin/x"], removed=[]),
    "delta changed unsorted": _set(kind="delta", base=1, changed=["bin/x", "a.txt"], removed=[]),
    "delta removes a file it keeps": _set(kind="delta", base=1, changed=["a.txt", "bin/x"], removed=["a.txt"]),
    "bad sha256 case": lambda m, e: m["files"][0].update(sha256=m["files"][0]["sha256"].upper()),
    "mode 1755 in manifest": lambda m, e: m["files"][1].update(mode="1755"),
    "signatures first": "swap",
}


@pytest.mark.parametrize("case", HOSTILE)
def test_both_readers_refuse_hostile_packages(tmp_path, keys, case):
    m, entries = good_manifest()
    mutate = HOSTILE[case]
    if callable(mutate):
        mutate(m, entries)
    pkg = tmp_path / "h.cpkg"
    raw_package(pkg, keys["py"], m, entries)
    if mutate == "swap":
        with tarfile.open(pkg) as tf:
            head = [(i.name, tf.extractfile(i).read(), i.mode, i.type) for i in tf.getmembers()[:2]]
        raw_package(pkg, keys["py"], m, entries, first=head[::-1])
    trust = keys["py"] + ".pub"
    results = {"swift": swift_verify(trust, pkg), "python": py("verify", "--trust", trust, pkg)}
    for who, res in results.items():
        if mutate is None:
            assert_ok(res)
        else:
            assert res.returncode != 0 and res.stdout.startswith("FAIL"), f"{who} accepted {case}: {res.stdout}"


@pytest.mark.parametrize("extra", [',"\\u0066iles":[]', ',"fil\\u0065s":[]', ',"\\u0074ype":"other"'])
def test_both_readers_refuse_a_key_repeated_through_an_escape(tmp_path, keys, extra):
    r"""FORMAT §3: keys are compared unescaped. Python's decoder sees "\u0066iles" as "files";
    a reader comparing raw bytes would take one list and Python the other."""
    m, entries = good_manifest()
    mb = json.dumps(m, sort_keys=True, separators=(",", ":"))
    pkg = tmp_path / "dup.cpkg"
    raw_package(pkg, keys["py"], m, entries, manifest_bytes=(mb[:-1] + extra + "}").encode())
    trust = keys["py"] + ".pub"
    for who, res in {"swift": swift_verify(trust, pkg), "python": py("verify", "--trust", trust, pkg)}.items():
        assert res.returncode != 0 and res.stdout.startswith("FAIL"), f"{who} accepted {extra}: {res.stdout}"
        assert "duplicate key" in res.stdout, f"{who}: {res.stdout}"


# ---- not a Courier container at all (FORMAT.md §1: "No other container or compression is accepted") ----
def other_container(tmp_path, keys, trees, kind):
    good = tmp_path / "good.cpkg"
    pycpkg.build(trees[0], "virus-defs", 3, keys["py"], str(good), compression="none")
    tar, pkg = open(good, "rb").read(), tmp_path / f"{kind}.cpkg"
    data = {"empty file": lambda: b"", "random bytes": lambda: random.Random(5).randbytes(4096),
            "bzip2": lambda: bz2.compress(tar), "xz": lambda: lzma.compress(tar),
            "truncated gzip": lambda: gzip.compress(tar)[:300]}[kind]()
    pkg.write_bytes(data)
    return pkg


OTHER_CONTAINERS = ["empty file", "random bytes", "bzip2", "xz", "truncated gzip"]


@pytest.mark.parametrize("kind", OTHER_CONTAINERS)
def test_python_refuses_other_containers(tmp_path, keys, trees, kind):
    assert_fail(py("verify", "--trust", keys["py"] + ".pub", other_container(tmp_path, keys, trees, kind)), 6)


@pytest.mark.parametrize("kind", OTHER_CONTAINERS)
def test_swift_refuses_other_containers(tmp_path, keys, trees, kind):
    """040b1ec crashed here (SIGSEGV in ArchiveReader's deinit after a failed init) instead of printing FAIL."""
    res = swift_verify(keys["py"] + ".pub", other_container(tmp_path, keys, trees, kind))
    assert res.returncode > 0 and res.stdout.startswith("FAIL"), f"rc={res.returncode} {res.stderr[:300]}"
