"""Interop tests for format 2 deltas (docs/FORMAT.md §3.5): deltas written by `courier-stage build`
(default `--delta-format 2`) are verified and applied by scripts/pycpkg.py, written from the spec
alone; deltas that break the spec — hand-built here and signed, so that only the rule under test
is broken — are refused by both readers.

Run with `COURIER_BIN=.../.build/debug python3 -m pytest -q Tests/interop`. Needs `zstandard`.
"""
import hashlib, io, json, os, random, shutil, tarfile, time

import pytest

from test_pycpkg import (DAY, DELIVER, INBOXD, STAGE, assert_fail, assert_ok, assert_same_tree, keys, py,  # noqa: F401
                         pycpkg, raw_package, run, snapshot, swift_build, swift_verify, write)

zstandard = pycpkg.zstandard
pytestmark = [
    pytest.mark.skipif(not all(os.access(p, os.X_OK) for p in (STAGE, DELIVER, INBOXD)),
                       reason="Swift binaries not found (set COURIER_BIN)"),
    pytest.mark.skipif(zstandard is None, reason="zstandard not installed"),
]
TYPE = "virus-defs"
MiB = 1 << 20


# ---- the spec, written out here once more (not taken from pycpkg) ----
def spec_digest(files):
    """§3.5's file-list digest, from its Python one-liner; files are (path, size, sha256, mode)."""
    return hashlib.sha256("".join(f"{m} {s} {h} {p}\n" for p, s, h, m in sorted(files, key=lambda f: f[0].encode()))
                          .encode()).hexdigest()


def tree_files(root):
    out = []
    for d, _, names in os.walk(root):
        for n in names:
            full = os.path.join(d, n)
            data, st = open(full, "rb").read(), os.lstat(full)
            out.append((os.path.relpath(full, root), len(data), hashlib.sha256(data).hexdigest(), "%04o" % (st.st_mode & 0o777)))
    return out


def spec_result(root):
    files = tree_files(root)
    return {"files": len(files), "bytes": sum(f[1] for f in files), "digest": spec_digest(files)}


def read(root, rel):
    return open(os.path.join(root, rel), "rb").read()


def make_patch(base, result, content_size=True):
    """A zstd frame that decodes, with `base` as a raw-content prefix, to `result` (zstd --patch-from)."""
    d = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdCompressor(level=3, dict_data=d, write_content_size=content_size).compress(result)


def window_log(base, result):
    return max(10, (len(base) + len(result) - 1).bit_length())


# ---- revisions: what a format 2 delta has to carry ----
RULES = [f"alert tcp any any -> any {1000 + i} (msg:\"signature {i}\"; sid:{100000 + i};)\n".encode() for i in range(3000)]


def revision_tree(root, v):
    """r1 -> r2: two rule files changed by a few lines, a 9 MiB database with 16 bytes changed, a new
    file, a new empty file, a file that becomes empty, a removed file (its directory goes too), a
    mode-only change, a file that becomes a directory. r2 -> r3: the directory becomes a file again,
    the emptied file gets content, the database changes and grows."""
    a = list(RULES)
    b = RULES[:500]
    db = bytearray(random.Random(0).randbytes(9 * MiB))
    if v >= 2:
        a[10], a[1500] = b"alert tcp any any -> any 1 (msg:\"replaced\";)\n", b"# disabled\n"
        b.insert(250, b"alert udp any any -> any 53 (msg:\"new\";)\n")
        db[4 * MiB:4 * MiB + 16] = b"0123456789abcdef"
    if v >= 3:
        a[2000] = b"# also disabled\n"
        a += [b"alert icmp any any -> any any (msg:\"tail %d\";)\n" % i for i in range(3)]
        db[7 * MiB:7 * MiB + 4] = b"XXXX"
        db += b"appended\n" * 100
    write(root, "rules/a.rules", b"".join(a))
    write(root, "rules/b.rules", b"".join(b), 0o640)
    write(root, "db/main.db", bytes(db))
    write(root, "db/unchanged.db", random.Random(1).randbytes(100_000))
    write(root, "empty", b"")
    write(root, "notes.txt", {1: b"something\n", 2: b"", 3: b"again\n"}[v])
    write(root, "bin/scan", b"#!/bin/sh\necho scan\n", 0o755 if v == 1 else 0o700)
    if v == 1:
        write(root, "old/gone.txt", b"bye\n")
    if v >= 2:
        write(root, "new/added.txt", b"hello\n")
        write(root, "new/empty.new", b"")
    if v == 2:
        write(root, "conf/x", b"directory in r2\n")
    else:
        write(root, "conf", b"plain file in r%d\n" % v)
    return root


@pytest.fixture(scope="module")
def revs(tmp_path_factory, keys):  # noqa: F811
    """Trees r1..r3 and the Swift packages: full r1 and r2, format 2 deltas 1->2 and 2->3, a format 1 delta 1->2."""
    d = tmp_path_factory.mktemp("revs")
    trees = {v: str(revision_tree(str(d / f"r{v}"), v)) for v in (1, 2, 3)}
    out, key = str(d / "out"), keys["swift"]
    pk = {"full1": swift_build(trees[1], 1, key, out), "full2": swift_build(trees[2], 2, key, out)}
    pk["d12"] = swift_build(trees[2], 2, key, out, "--delta-from", pk["full1"], base_rev=1)
    pk["d23"] = swift_build(trees[3], 3, key, out, "--delta-from", pk["full2"], base_rev=2)
    pk["d12v1"] = swift_build(trees[2], 2, key, d / "v1", "--delta-from", pk["full1"], "--delta-format", "1", base_rev=1)
    return trees, pk, keys["swift"] + ".pub"


def manifest_of(pkg, pub):
    return pycpkg.read_package(str(pkg), pub, manifest_only=True)[0]


# ---- Swift writes format 2, Python reads ----
def test_swift_format2_delta_manifest_follows_the_spec(revs):
    trees, pk, pub = revs
    m = manifest_of(pk["d12"], pub)
    assert (m["format"], m["kind"], m["base"], m["revision"]) == (2, "delta", 1, 2)
    assert "files" not in m, "a format 2 delta names the digest of the list instead of the list"
    by = {c["path"]: c for c in m["changed"]}
    assert list(by) == ["bin/scan", "conf/x", "db/main.db", "new/added.txt", "new/empty.new", "notes.txt",
                        "rules/a.rules", "rules/b.rules"]
    assert m["removed"] == ["conf", "old/gone.txt"]
    # What the delta exercises: new, emptied and new empty files whole; changed text files, the
    # mode-only change and the big file patched, the big file in a patch of its own.
    for p in ("conf/x", "new/added.txt", "new/empty.new", "notes.txt"):
        assert set(by[p]) == {"path", "size", "mode", "sha256"}, by[p]
        assert by[p]["sha256"] == hashlib.sha256(read(trees[2], p)).hexdigest()
    for p in ("bin/scan", "rules/a.rules", "rules/b.rules", "db/main.db"):
        assert set(by[p]) == {"path", "size", "mode", "patch", "base_size"}, by[p]
        assert by[p]["base_size"] == os.path.getsize(os.path.join(trees[1], p))
    assert by["bin/scan"]["mode"] == "0700" and by["rules/b.rules"]["mode"] == "0640"
    big = by["db/main.db"]["patch"]
    assert [c["path"] for c in m["changed"] if c.get("patch") == big] == ["db/main.db"]
    assert by["rules/a.rules"]["patch"] != big
    for i, pt in enumerate(m["patches"]):
        made = [c for c in m["changed"] if c.get("patch") == i]
        assert made, f"patch {i} makes no file"
        base = b"".join(read(trees[1], c["path"]) for c in made)
        result = b"".join(read(trees[2], c["path"]) for c in made)
        assert pt["algorithm"] == "zstd-prefix"
        assert pt["base_sha256"] == hashlib.sha256(base).hexdigest()
        assert pt["result_sha256"] == hashlib.sha256(result).hexdigest()
        assert 10 <= pt["window_log"] <= 31 and 1 << pt["window_log"] >= len(base) + len(result)
    assert m["patches"][big]["size"] < 4096, "16 changed bytes of 9 MiB make a small patch"
    # The digest is the one §3.5 defines, over the new tree.
    assert m["result"] == spec_result(trees[2])


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_swift_format2_chain_is_applied_by_python(tmp_path, revs, keys, compression):  # noqa: F811
    trees, pk, pub = revs
    if compression == "zstd":
        full1, d12, d23 = pk["full1"], pk["d12"], pk["d23"]
    else:  # the same deltas in the other containers
        out = tmp_path / "o"
        full1 = swift_build(trees[1], 1, keys["swift"], out, "--compression", compression)
        full2 = swift_build(trees[2], 2, keys["swift"], out, "--compression", compression)
        d12 = swift_build(trees[2], 2, keys["swift"], out, "--compression", compression, "--delta-from", full1, base_rev=1)
        d23 = swift_build(trees[3], 3, keys["swift"], out, "--compression", compression, "--delta-from", full2, base_rev=2)
    for pkg in (d12, d23):
        assert manifest_of(pkg, pub)["format"] == 2
        res = py("verify", "--trust", pub, pkg)   # no base needed to verify
        assert_ok(res)
        assert " delta " in res.stdout
    t1, t2, t3 = (tmp_path / f"t{i}" for i in (1, 2, 3))
    assert_ok(py("extract", "--trust", pub, "--into", t1, full1))
    assert_same_tree(t1, trees[1])
    before = snapshot(t1)
    assert_ok(py("extract", "--trust", pub, "--into", t2, "--base", t1, d12))
    assert_same_tree(t2, trees[2])          # byte-identical, modes, and no "old/" left behind
    assert snapshot(t1) == before, "the base tree must not be modified"
    assert_ok(py("extract", "--trust", pub, "--into", t3, "--base", t2, d23))
    assert_same_tree(t3, trees[3])          # conf/ is a file again, notes.txt has content again
    # Swift applies the same deltas to the same trees.
    s3 = tmp_path / "s3"
    res = run(INBOXD, "extract", "--trust", pub, "--into", s3, "--base", t2, d23)
    assert res.returncode == 0, res.stdout + res.stderr
    assert snapshot(s3) == snapshot(t3)


def test_swift_delta_format_1_is_still_format_1(tmp_path, revs):
    trees, pk, pub = revs
    m = manifest_of(pk["d12v1"], pub)
    assert m["format"] == 1 and "patches" not in m and "result" not in m
    assert m["changed"] == ["bin/scan", "conf/x", "db/main.db", "new/added.txt", "new/empty.new", "notes.txt",
                            "rules/a.rules", "rules/b.rules"]
    assert [f["path"] for f in m["files"]] == sorted((f[0] for f in tree_files(trees[2])), key=str.encode)
    assert_ok(py("extract", "--trust", pub, "--into", tmp_path / "t1", pk["full1"]))
    assert_ok(py("extract", "--trust", pub, "--into", tmp_path / "t2", "--base", tmp_path / "t1", pk["d12v1"]))
    assert_same_tree(tmp_path / "t2", trees[2])


def test_python_refuses_to_build_against_a_format2_delta(tmp_path, revs, keys):  # noqa: F811
    trees, pk, _ = revs
    res = py("build", "--tree", trees[3], "--type", TYPE, "--revision", "3", "--key", keys["swift"],
             "--out", tmp_path / "x.cpkg", "--delta-from-manifest", pk["d12"])
    assert res.returncode == 64 and "full package" in res.stderr, res.stderr
    assert not os.path.exists(tmp_path / "x.cpkg")


# ---- a base that is not the delta's base ----
def _base_variant(root, case):
    if case == "patched file edited, same size":
        data = bytearray(read(root, "rules/a.rules"))
        data[100] ^= 0x20
        write(root, "rules/a.rules", bytes(data))
    elif case == "patched file of another size":
        write(root, "bin/scan", read(root, "bin/scan") + b"# local edit\n", 0o755)
    elif case == "patched file removed":
        os.unlink(os.path.join(root, "db", "main.db"))
    elif case == "patched file is a directory":
        os.unlink(os.path.join(root, "db", "main.db"))
        write(root, "db/main.db/inside", b"x")
    elif case == "patched file's directory is a file":
        shutil.rmtree(os.path.join(root, "db"))
        write(root, "db", b"a file where the directory was\n")
    elif case == "unpatched file edited":   # only the result's digest can tell
        write(root, "db/unchanged.db", b"drifted\n")


BASE_CASES = {  # case -> what pycpkg's reason must name
    "patched file edited, same size": "do not hash to its base_sha256",
    "patched file of another size": "'bin/scan' has",
    "patched file removed": "'db/main.db' is missing",
    "patched file is a directory": "'db/main.db' is not a regular file",
    "patched file's directory is a file": "'db/main.db' is missing",
    "unpatched file edited": "result",
}


@pytest.mark.parametrize("case", BASE_CASES)
def test_both_refuse_a_format2_delta_on_the_wrong_base(tmp_path, revs, case):
    trees, pk, pub = revs
    base = tmp_path / "base"
    shutil.copytree(trees[1], base)
    _base_variant(str(base), case)
    before = snapshot(base)
    res = py("extract", "--trust", pub, "--into", tmp_path / "p", "--base", base, pk["d12"])
    assert_fail(res, 11)
    assert "base" in res.stdout and BASE_CASES[case] in res.stdout, res.stdout
    if case != "unpatched file edited":
        assert "base-mismatch" in res.stdout
    assert not os.path.exists(tmp_path / "p") and not [n for n in os.listdir(tmp_path) if n.startswith(".pycpkg")]
    assert snapshot(base) == before
    res = run(INBOXD, "extract", "--trust", pub, "--into", tmp_path / "s", "--base", base, pk["d12"])
    assert res.returncode != 0, f"Swift applied the delta to a wrong base ({case}):\n{res.stdout}"
    assert_ok(py("verify", "--trust", pub, pk["d12"]))  # the package itself is fine


# ---- patch entries: tampered, repeated, missing (the manifest still carries a valid signature) ----
def entries_of(pkg):
    """The entries of a package as (name, data, mode, type)."""
    data = open(pkg, "rb").read()
    if data[:4] == b"\x28\xb5\x2f\xfd":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [(m.name, tf.extractfile(m).read(), m.mode, m.type) for m in tf.getmembers()]


def repack(pkg, out, mutate, key, resign=False):
    """Rewrite PKG into OUT (plain tar) after mutate(manifest dict, payload entries). Without
    resign the original manifest and signature bytes are kept, so the signature stays valid
    (mutate must then leave the manifest alone); with it the changed manifest is signed with KEY."""
    ents = entries_of(pkg)
    (mn, mb, _, _), head, rest = ents[0], ents[:2], ents[2:]
    assert mn == pycpkg.MANIFEST
    m = json.loads(mb)
    mutate(m, rest)
    if resign:
        raw_package(out, key, m, rest)
    else:
        assert json.loads(mb) == m, "mutate changed the manifest: pass resign=True"
        raw_package(out, key, m, rest, first=head)
    return out


def _flip(data, at=None):
    data = bytearray(data)
    data[len(data) // 2 if at is None else at] ^= 0x01
    return bytes(data)


def _patch_index(rest, name):
    return next(i for i, e in enumerate(rest) if e[0] == name)


def _set_entry(rest, name, data=None, mode=None, new_name=None):
    i = _patch_index(rest, name)
    n, d, md, t = rest[i]
    rest[i] = (new_name or n, d if data is None else data, md if mode is None else mode, t)


SIGNED_AS_BUILT = {  # Swift's signature untouched: the entry checks of §2 must catch these
    "patch byte flipped": lambda m, r: _set_entry(r, "patches/0", data=_flip(r[_patch_index(r, "patches/0")][1])),
    "patch entry mode 0600": lambda m, r: _set_entry(r, "patches/0", mode=0o600),
    "patch entry mode 0755": lambda m, r: _set_entry(r, "patches/0", mode=0o755),
    "patch entry repeated": lambda m, r: r.append(r[_patch_index(r, "patches/0")]),
    "patch entry missing": lambda m, r: r.pop(_patch_index(r, "patches/0")),
    "patch entry named patches/00": lambda m, r: _set_entry(r, "patches/0", new_name="patches/00"),
    "patch entry beyond the patches": lambda m, r: r.append(("patches/%d" % len(m["patches"]), b"x", 0o644, tarfile.REGTYPE)),
    "patch carried as payload/": lambda m, r: _set_entry(r, "patches/0", new_name="payload/patches/0"),
}


@pytest.mark.parametrize("case", SIGNED_AS_BUILT)
def test_both_refuse_bad_patch_entries(tmp_path, revs, case):
    trees, pk, pub = revs
    pkg = repack(pk["d12"], tmp_path / "t.cpkg", SIGNED_AS_BUILT[case], pk_key(pub))
    res = py("verify", "--trust", pub, pkg)
    assert_fail(res)
    assert "patch" in res.stdout, res.stdout
    assert_fail(swift_verify(pub, pkg))
    # control: the same repacking without a change is accepted by both
    ok = repack(pk["d12"], tmp_path / "ok.cpkg", lambda m, r: None, pk_key(pub))
    assert_ok(py("verify", "--trust", pub, ok))
    assert_ok(swift_verify(pub, ok))


def _patch_of(m, path):
    return next(c["patch"] for c in m["changed"] if c["path"] == path)


def _base_and_result(m, i, trees):
    made = [c["path"] for c in m["changed"] if c.get("patch") == i]
    return b"".join(read(trees[1], p) for p in made), b"".join(read(trees[2], p) for p in made)


def _replace_patch(m, rest, i, data):
    """Put DATA in patches/<i> and make the manifest's size and sha256 match (so that only the
    decoding can tell)."""
    _set_entry(rest, f"patches/{i}", data=data)
    m["patches"][i].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())


def resigned_case(case, trees):
    def mutate(m, rest):
        i = _patch_of(m, "rules/a.rules")
        base, result = _base_and_result(m, i, trees)
        frame = rest[_patch_index(rest, f"patches/{i}")][1]
        if case == "frame corrupted (entry hash updated)":
            _replace_patch(m, rest, i, _flip(frame, len(frame) - 8))
        elif case == "frame makes other content":
            _replace_patch(m, rest, i, make_patch(base, _flip(result, 5)))
        elif case == "frame makes more bytes":
            _replace_patch(m, rest, i, make_patch(base, result + b"extra", content_size=False))
        elif case == "frame makes fewer bytes":
            _replace_patch(m, rest, i, make_patch(base, result[:-1], content_size=False))
        elif case == "second frame after the first":
            _replace_patch(m, rest, i, frame + make_patch(b"", b"more"))
        elif case == "skippable frame first":
            _replace_patch(m, rest, i, bytes.fromhex("502a4d1804000000") + b"abcd" + frame)
        elif case == "base_sha256 of another base":
            m["patches"][i]["base_sha256"] = hashlib.sha256(_flip(base, 7)).hexdigest()
        elif case == "base_size of another base":
            c = next(c for c in m["changed"] if c["path"] == "rules/a.rules")
            c["base_size"] += 1
        elif case == "result digest of another tree":
            m["result"]["digest"] = hashlib.sha256(b"other").hexdigest()
        elif case == "result file count off by one":
            m["result"]["files"] += 1
        elif case == "result bytes off by one":
            m["result"]["bytes"] -= 1
        elif case == "patched file's mode differs from the result digest's":
            next(c for c in m["changed"] if c["path"] == "rules/a.rules")["mode"] = "0600"
        else:
            raise AssertionError(case)
    return mutate


RESIGNED = {  # case -> words pycpkg's reason must hold
    "frame corrupted (entry hash updated)": "patches/",
    "frame makes other content": "result_sha256",
    "frame makes more bytes": "more than the result",
    "frame makes fewer bytes": "decodes to",
    "second frame after the first": "after its one zstd frame",
    "skippable frame first": "not a zstd frame",
    "base_sha256 of another base": "base_sha256",
    "base_size of another base": "base",
    "result digest of another tree": "digest",
    "result file count off by one": "files",
    "result bytes off by one": "bytes",
    "patched file's mode differs from the result digest's": "digest",
}


@pytest.mark.parametrize("case", RESIGNED)
def test_both_refuse_signed_deltas_that_do_not_apply(tmp_path, revs, case):
    """The manifest is signed again after the change, so both verifiers accept the package; applying
    it to the right base must fail, in pycpkg and in Swift, and leave nothing behind."""
    trees, pk, pub = revs
    pkg = repack(pk["d12"], tmp_path / "t.cpkg", resigned_case(case, trees), pk_key(pub), resign=True)
    assert_ok(py("verify", "--trust", pub, pkg))
    assert_ok(swift_verify(pub, pkg))
    base = tmp_path / "base"
    shutil.copytree(trees[1], base)
    res = py("extract", "--trust", pub, "--into", tmp_path / "p", "--base", base, pkg)
    assert_fail(res, 11)
    assert RESIGNED[case] in res.stdout, res.stdout
    assert not os.path.exists(tmp_path / "p")
    res = run(INBOXD, "extract", "--trust", pub, "--into", tmp_path / "s", "--base", base, pkg)
    assert res.returncode != 0, f"Swift applied {case}:\n{res.stdout}{res.stderr}"
    assert not os.path.exists(tmp_path / "s") or not os.listdir(tmp_path / "s")


def pk_key(pub):
    return pub[:-len(".pub")]


def _small_window(tmp_path, revs):
    """The delta with window_log 10 (1 KiB) for the patch of the rule files, whose Swift-made frame
    needs a window of hundreds of KiB: the manifest's window no longer "holds base and result"."""
    trees, pk, pub = revs
    def mutate(m, rest):
        m["patches"][_patch_of(m, "rules/a.rules")]["window_log"] = 10
    pkg = repack(pk["d12"], tmp_path / "w.cpkg", mutate, pk_key(pub), resign=True)
    base = tmp_path / "base"
    shutil.copytree(trees[1], base)
    return pkg, base, pub


def test_python_bounds_the_decoder_by_window_log(tmp_path, revs):
    """pycpkg decodes with max_window_size = 2^window_log, so a frame that needs a larger window
    than its manifest declares is refused (FORMAT §3.5: the window 'holds base and result')."""
    pkg, base, pub = _small_window(tmp_path, revs)
    assert_ok(py("verify", "--trust", pub, pkg))
    res = py("extract", "--trust", pub, "--into", tmp_path / "p", "--base", base, pkg)
    assert_fail(res, 11)
    assert "patches/" in res.stdout and "does not decode" in res.stdout, res.stdout


def test_swift_bounds_the_decoder_by_window_log(tmp_path, revs):
    pkg, base, pub = _small_window(tmp_path, revs)
    res = run(INBOXD, "extract", "--trust", pub, "--into", tmp_path / "s", "--base", base, pkg)
    assert res.returncode == 11, f"Swift applied a patch whose frame needs more than 2^window_log:\n{res.stdout}"
    assert "window" in res.stderr and "2^10" in res.stderr, res.stderr


# ---- hand-built format 2 deltas (manifest rules of §3.5), signed by pycpkg's key ----
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    r1, r2 = str(d / "r1"), str(d / "r2")
    lines = RULES[:200]
    write(r1, "a.rules", b"".join(lines))
    write(r2, "a.rules", b"".join(lines[:50] + [b"# changed\n"] + lines[51:]))
    write(r1, "b.rules", b"".join(lines[:80]))
    write(r2, "b.rules", b"".join(lines[:80]) + b"# appended\n")
    write(r1, "bin/x", b"#!/bin/sh\n", 0o755)
    write(r2, "bin/x", b"#!/bin/sh\n", 0o700)
    for r in (r1, r2):
        write(r, "same.txt", b"unchanged\n")
    write(r1, "gone.txt", b"bye\n")
    write(r1, "conf", b"file\n")
    write(r2, "conf/x", b"dir\n")
    write(r2, "new.txt", b"new\n")
    return r1, r2


def hand_delta(r1, r2, base_rev=1, rev=2):
    """A format 2 delta r1 -> r2 built from §3.5 alone: every changed file present (non-empty) in
    both trees in one patch, the others whole."""
    old = {f[0]: f for f in tree_files(r1)}
    new = sorted(tree_files(r2), key=lambda f: f[0].encode())
    changed, patched, entries = [], [], []
    for p, size, h, mode in new:
        if old.get(p) == (p, size, h, mode):
            continue
        if p in old and size and old[p][1]:
            changed.append(dict(path=p, size=size, mode=mode, patch=0, base_size=old[p][1]))
            patched.append(p)
        else:
            changed.append(dict(path=p, size=size, mode=mode, sha256=h))
            entries.append(("payload/" + p, read(r2, p), int(mode, 8), tarfile.REGTYPE))
    base, result = b"".join(read(r1, p) for p in patched), b"".join(read(r2, p) for p in patched)
    frame = make_patch(base, result)
    entries.append(("patches/0", frame, 0o644, tarfile.REGTYPE))
    now = int(time.time())
    m = dict(format=2, type=TYPE, revision=rev, base=base_rev, kind="delta", created=pycpkg.fmt_time(now),
             expires=pycpkg.fmt_time(now + DAY), provenance={"tool": "test_format2"}, changed=changed,
             removed=sorted((p for p in old if p not in {f[0] for f in new}), key=str.encode),
             patches=[dict(algorithm="zstd-prefix", size=len(frame), sha256=hashlib.sha256(frame).hexdigest(),
                           base_sha256=hashlib.sha256(base).hexdigest(), result_sha256=hashlib.sha256(result).hexdigest(),
                           window_log=window_log(base, result))],
             result=spec_result(r2))
    return m, entries


def _changed(path, **kv):
    return lambda m, e: next(c for c in m["changed"] if c["path"] == path).update(kv)


def _del_changed_key(path, key):
    return lambda m, e: next(c for c in m["changed"] if c["path"] == path).pop(key)


def _patch(**kv):
    return lambda m, e: m["patches"][0].update(kv)


def _add_changed(entry):
    def f(m, e):
        m["changed"].append(entry)
        m["changed"].sort(key=lambda c: c["path"].encode())
    return f


def _extra_patch(m, e):
    m["patches"].append(dict(m["patches"][0]))
    e.append(("patches/1", e[-1][1], 0o644, tarfile.REGTYPE))


HAND = {  # case -> words both readers' reasons must hold (None: only that they refuse)
    "format 3": "upgrade",
    "format 1000": "upgrade",
    "unknown patch algorithm": "upgrade",
    "format 2 full package": None,
    "format 0": None,
    "format as a string": None,
    "result missing": None,
    "result digest in upper case": None,
    "result bytes negative": None,
    "whole and patched at once": None,
    "patch without base_size": None,
    "base_size without patch": None,
    "patch index out of range": None,
    "patch index as a string": None,
    "patch that makes no file": None,
    "changed path also removed": None,
    "changed path is the parent of another": None,
    "changed not sorted": None,
    "changed path repeated": None,
    "changed as strings": None,
    "window_log 9": None,
    "window_log 32": None,
    "patch sha256 missing": None,
    "patch entry size differs from the manifest": None,
    "patch entry hash differs from the manifest": None,
    "null in a changed entry": None,
    "null under an unknown key": None,
    "fraction under an unknown key": None,
    "1000.0 as a patch's size": None,
}
MUTATE = {
    "format 3": lambda m, e: m.update(format=3),
    "format 1000": lambda m, e: m.update(format=1000),
    "unknown patch algorithm": _patch(algorithm="bsdiff"),
    "format 2 full package": lambda m, e: (m.update(kind="full"), [m.pop(k) for k in ("base", "removed")]),
    "format 0": lambda m, e: m.update(format=0),
    "format as a string": lambda m, e: m.update(format="2"),
    "result missing": lambda m, e: m.pop("result"),
    "result digest in upper case": lambda m, e: m["result"].update(digest=m["result"]["digest"].upper()),
    "result bytes negative": lambda m, e: m["result"].update(bytes=-1),
    "whole and patched at once": _changed("a.rules", sha256="0" * 64),
    "patch without base_size": _del_changed_key("a.rules", "base_size"),
    "base_size without patch": _del_changed_key("a.rules", "patch"),
    "patch index out of range": _changed("a.rules", patch=1),
    "patch index as a string": _changed("a.rules", patch="0"),
    "patch that makes no file": _extra_patch,
    "changed path also removed": lambda m, e: m.update(removed=sorted(m["removed"] + ["new.txt"], key=str.encode)),
    "changed path is the parent of another": lambda m, e: (
        _add_changed(dict(path="new.txt/y", size=0, mode="0644", sha256=hashlib.sha256(b"").hexdigest()))(m, e),
        e.append(("payload/new.txt/y", b"", 0o644, tarfile.REGTYPE))),
    "changed not sorted": lambda m, e: m["changed"].reverse(),
    "changed path repeated": lambda m, e: m["changed"].append(m["changed"][-1]),
    "changed as strings": lambda m, e: m.update(changed=[c["path"] for c in m["changed"]]),
    "window_log 9": _patch(window_log=9),
    "window_log 32": _patch(window_log=32),
    "patch sha256 missing": lambda m, e: m["patches"][0].pop("sha256"),
    "patch entry size differs from the manifest": _patch(size=1),
    "patch entry hash differs from the manifest": _patch(sha256="0" * 64),
    "null in a changed entry": _changed("new.txt", patch=None),
    "null under an unknown key": lambda m, e: m.update({"x-future": {"a": [1, None]}}),
    "fraction under an unknown key": lambda m, e: m.update({"x-future": 1.5}),
    "1000.0 as a patch's size": _patch(size=float(1000)),
}


ACCEPTED = {  # what §3 leaves open: readers must accept these
    "valid (control)": None,
    "files key present (ignored in format 2)": lambda m, e: m.update(files=[{"path": "x", "size": "nonsense"}]),
    "unknown keys in changed, patches and result": lambda m, e: (m["changed"][0].update({"x-note": "a"}),
                                                                  m["patches"][0].update({"x-level": 19}),
                                                                  m["result"].update({"x-when": "now"})),
    "patch entry before the payload": lambda m, e: e.insert(0, e.pop()),
}


@pytest.mark.parametrize("case", list(ACCEPTED) + list(HAND))
def test_both_readers_apply_rules_of_format2_manifests(tmp_path, keys, small, case):  # noqa: F811
    r1, r2 = small
    m, entries = hand_delta(r1, r2)
    mutate = ACCEPTED[case] if case in ACCEPTED else MUTATE[case]
    if mutate:
        mutate(m, entries)
    pkg = tmp_path / f"{TYPE}_2_from_1.cpkg"
    raw_package(pkg, keys["py"], m, entries)
    trust = keys["py"] + ".pub"
    results = {"python": py("verify", "--trust", trust, pkg), "swift": swift_verify(trust, pkg)}
    if case in ACCEPTED:
        for who, res in results.items():
            assert_ok(res)
        assert_ok(py("extract", "--trust", trust, "--into", tmp_path / "p", "--base", r1, pkg))
        assert_same_tree(tmp_path / "p", r2)
        res = run(INBOXD, "extract", "--trust", trust, "--into", tmp_path / "s", "--base", r1, pkg)
        assert res.returncode == 0, res.stdout + res.stderr
        assert_same_tree(tmp_path / "s", r2)
        return
    for who, res in results.items():
        assert res.returncode != 0 and res.stdout.startswith("FAIL"), f"{who} accepted {case}: {res.stdout}{res.stderr}"
        if HAND[case]:
            assert HAND[case] in res.stdout, f"{who}: {res.stdout}"


def test_python_format2_digest_matches_the_spec_one_liner(small):
    """pycpkg's digest function against §3.5's Python line, incl. byte order of non-ASCII paths and the empty tree."""
    files = tree_files(small[1]) + [("é", 0, hashlib.sha256(b"").hexdigest(), "0644"),
                                    ("z\u0301", 3, "ab" * 32, "0600"), ("Z", 1, "cd" * 32, "0755")]
    assert pycpkg.file_list_digest(files) == spec_digest(files)
    assert pycpkg.file_list_digest([]) == hashlib.sha256(b"").hexdigest()
