#!/usr/bin/env python3
"""pycpkg: an independent implementation of the Courier package format (formats 1 and 2), written
from docs/FORMAT.md alone (not from the Swift sources). Tests/interop runs it against the Swift tools.
It reads, verifies and applies format 1 packages and format 2 deltas (§3.5); it writes format 1.

  pycpkg.py keygen OUT
  pycpkg.py build --tree DIR --type T --revision N --key KEY --out FILE [--delta-from-manifest BASE.cpkg]
  pycpkg.py verify --trust PUB_OR_DIR PKG...
  pycpkg.py extract --trust PUB_OR_DIR --into DIR [--base BASEDIR] PKG
"""
import argparse, base64, binascii, datetime, gzip, hashlib, io, json, os, re, shutil, stat, sys, tarfile, tempfile, time, zlib
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
try:
    import zstandard
except ImportError:  # zstd is optional: gzip and plain tar still work
    zstandard = None

MANIFEST, SIGS, PREFIX = "courier-manifest.json", "courier-signatures.json", b"courier-manifest-v1\n"
PUB_TAG, SEC_TAG = "courier-ed25519-v1", "courier-ed25519-secret-v1"
LIMITS = dict(manifest=32 << 20, sigs=64 << 10, total=8 << 30, entries=200_000, ratio=1000, path=1024,
              window=256 << 20)  # window: base + result of one format 2 patch (§3.5, Courier's delta_window)
FORMATS = (1, 2)  # the manifest formats this reader understands
TYPE_RE, TIME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}"), re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
HEX64, MODE_RE, REV_RE = re.compile(r"[0-9a-f]{64}"), re.compile(r"0[0-7]{3}"), re.compile(r"[1-9][0-9]{0,19}")
PATCH_RE, ZSTD_MAGIC = re.compile(r"patches/(0|[1-9][0-9]*)"), b"\x28\xb5\x2f\xfd"
_ZERR = (zstandard.ZstdError,) if zstandard else ()


class Refused(Exception):
    """The package (or an input) breaks the spec. `code` mirrors the Swift tools' exit codes."""
    def __init__(self, reason, code=6):
        super().__init__(reason)
        self.code = code


def b64(raw): return base64.b64encode(raw).decode()
def keyid(raw): return hashlib.sha256(raw).hexdigest()[:16]
def _raw_pub(key): return key.public_key().public_bytes_raw()
def fmt_time(t): return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _b64d(s, n, what):
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raw = b""
    if len(raw) != n:
        raise Refused(f"{what}: not base64 of {n} bytes", 7)
    return raw


def parse_time(s, what):
    try:
        if isinstance(s, str) and TIME_RE.fullmatch(s):
            return int(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp())
    except ValueError:
        pass
    raise Refused(f"manifest: bad {what} time {s!r}")


# ---- keys (§6) ----
def keygen(out, comment=""):
    sk = Ed25519PrivateKey.generate()
    with os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(f"{SEC_TAG} {b64(sk.private_bytes_raw())}\n")
    with open(out + ".pub", "x") as f:
        f.write(" ".join(filter(None, [PUB_TAG, b64(_raw_pub(sk)), comment])) + "\n")
    return keyid(_raw_pub(sk))


def load_secret(path):
    parts = open(path).read().split()
    if len(parts) != 2 or parts[0] != SEC_TAG:
        raise Refused(f"{path}: not a {SEC_TAG} key", 7)
    return Ed25519PrivateKey.from_private_bytes(_b64d(parts[1], 32, path))


def parse_pub(line, what):
    parts = line.strip().split(None, 2)
    if len(parts) < 2 or parts[0] != PUB_TAG:
        raise Refused(f"{what}: not a {PUB_TAG} public key", 7)
    return _b64d(parts[1], 32, what)


def load_trust(path):
    """A .pub file or a directory of them (+ optional `revoked` file or directory) ->
    ({keyid: public key} of trusted, non-revoked keys, {revoked key id: public key, or None when
    only the id is listed}). A revoked key's public key lets check_signatures recognise its
    signatures under any declared keyid (§4)."""
    isdir = os.path.isdir(path)
    pubs = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".pub")) if isdir else [path]
    raws = [parse_pub(open(p).readline(), p) for p in pubs]
    revoked, rv = {}, os.path.join(path, "revoked")
    if isdir and os.path.isdir(rv):
        for n in sorted(os.listdir(rv)):
            if n.endswith(".pub"):
                r = parse_pub(open(os.path.join(rv, n)).readline(), n)
                revoked[keyid(r)] = r
    elif isdir and os.path.isfile(rv):
        for line in open(rv):
            line = line.split("#", 1)[0].strip()
            if line:
                if re.fullmatch(r"[0-9a-fA-F]{16}", line):
                    revoked.setdefault(line.lower(), None)
                else:
                    r = parse_pub(line, rv)
                    revoked[keyid(r)] = r
    for r in raws:  # a trusted directory's .pub whose id is revoked: its key is known now
        if keyid(r) in revoked:
            revoked[keyid(r)] = r
    revoked = {k: (Ed25519PublicKey.from_public_bytes(r) if r else None) for k, r in revoked.items()}
    trusted = {keyid(r): Ed25519PublicKey.from_public_bytes(r) for r in raws if keyid(r) not in revoked}
    if not trusted:
        raise Refused(f"{path}: no usable public key (none, or all revoked)", 7)
    return trusted, revoked


# ---- signatures (§4) and manifest (§3) ----
def _json(data, what):
    def pairs(kv):
        if len({k for k, _ in kv}) != len(kv):
            raise Refused(f"{what}: duplicate key in a JSON object")
        return dict(kv)
    def const(c): raise Refused(f"{what}: {c} is not JSON")
    def number(n):  # §3: every number is a plain non-negative decimal integer
        if not re.fullmatch(r"0|[1-9][0-9]*", n):
            raise Refused(f"{what}: number {n[:40]} is not a non-negative integer")
        return int(n)
    def no_null(v):  # §3: no null anywhere (a key that does not apply is left out)
        if v is None:
            raise Refused(f"{what}: null is not allowed")
        for x in v.values() if isinstance(v, dict) else v if isinstance(v, list) else ():
            no_null(x)
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=const,
                         parse_float=number, parse_int=number)
        no_null(doc)
    except (ValueError, RecursionError) as e:  # also UnicodeDecodeError
        raise Refused(f"{what}: invalid JSON/UTF-8 ({e})")
    return doc


def check_signatures(mbytes, sbytes, trusted, revoked, threshold=1):
    doc = _json(sbytes, SIGS)
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("signatures"), list):
        raise Refused(f"{SIGS}: not a format 1 signature list")
    good = set()
    for s in doc["signatures"]:
        if not isinstance(s, dict) or not all(isinstance(s.get(k), str) for k in ("algorithm", "keyid", "signature")):
            raise Refused(f"{SIGS}: malformed signature entry")
        if s["keyid"].lower() in revoked:  # the declared id, in any letter case
            raise Refused(f"signed by revoked key {s['keyid']!r}", 7)
        try:  # and the key itself, whatever id or algorithm the signature is filed under
            sig = _b64d(s["signature"], 64, "signature")
        except Refused:
            sig = None
        for kid, rk in revoked.items():
            if rk is not None and sig is not None:
                try:
                    rk.verify(sig, PREFIX + mbytes)
                    raise Refused(f"signed by revoked key {kid} (filed under key id {s['keyid']!r})", 7)
                except InvalidSignature:
                    pass
        key = trusted.get(s["keyid"])
        if key is not None and s["algorithm"] == "ed25519":
            try:  # a signature that does not verify (or does not decode) counts for nothing
                key.verify(_b64d(s["signature"], 64, "signature"), PREFIX + mbytes)
                good.add(s["keyid"])
            except (InvalidSignature, Refused):
                pass
    if len(good) < threshold:
        raise Refused(f"no valid signature by {threshold} trusted key(s) (found {len(good)})", 7)
    return sorted(good)


def check_path(p):
    try:
        b = p.encode("utf-8")  # surrogate escapes (invalid UTF-8 in a tar name) fail here
    except (AttributeError, UnicodeEncodeError):
        raise Refused(f"path {p!r} is not a UTF-8 string", 10)
    if (len(b) > LIMITS["path"] or re.search(r"[\x00-\x1f\x7f\\]", p)
            or any(c in ("", ".", "..") or len(c.encode()) > 255 for c in p.split("/"))):
        raise Refused(f"unsafe path {p!r}", 10)
    return p


def _int(v, lo, hi): return type(v) is int and lo <= v <= hi
def _sorted_unique(paths): return all(a.encode() < b.encode() for a, b in zip(paths, paths[1:]))


def _need(ok, what, code=6):
    if not ok:
        raise Refused(f"manifest: {what}", code)


def _check_format(m):
    _need(isinstance(m, dict), "not a JSON object")
    f = m.get("format")
    if type(f) is int and f > FORMATS[-1]:
        raise Refused(f"manifest: format {f} is newer than this reader understands (formats {FORMATS[0]} to "
                      f"{FORMATS[-1]}); upgrade pycpkg to read it")
    _need(type(f) is int and f in FORMATS, f"format must be an integer from {FORMATS[0]} to {FORMATS[-1]}, not {f!r}")
    return f


def file_list_digest(files):
    """§3.5: SHA-256 of `<mode> <size> <sha256> <path>\\n` per file, in byte order of path.
    `files` holds (path, size, sha256, mode) tuples."""
    lines = "".join(f"{m} {s} {h} {p}\n" for p, s, h, m in sorted(files, key=lambda f: f[0].encode()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _check_entry_fields(f, what):
    _need(isinstance(f, dict) and _int(f.get("size"), 0, 2**63 - 1) and isinstance(f.get("mode"), str)
          and MODE_RE.fullmatch(f["mode"]), f"bad {what} entry {str(f)[:200]}")
    check_path(f.get("path"))


def _check_format2(m):
    """§3.5 beyond what format 1 shares; return {path: changed entry} of the files carried whole."""
    need = _need
    res = m.get("result")
    need(isinstance(res, dict) and _int(res.get("files"), 0, 2**63 - 1) and _int(res.get("bytes"), 0, 2**63 - 1)
         and isinstance(res.get("digest"), str) and HEX64.fullmatch(res["digest"]),
         "result must be {files, bytes, digest} (two integers and 64 lowercase hex digits)")
    need(res["bytes"] <= LIMITS["total"] and res["files"] <= LIMITS["entries"],
         f"the resulting tree ({res['files']} files, {res['bytes']} bytes) exceeds the limits", 10)
    patches = m.get("patches")
    need(isinstance(patches, list) and len(patches) <= LIMITS["entries"], "patches must be an array")
    for i, pt in enumerate(patches):
        need(isinstance(pt, dict) and isinstance(pt.get("algorithm"), str), f"patch {i}: not an object with an algorithm")
        if pt["algorithm"] != "zstd-prefix":
            raise Refused(f"manifest: patch {i} uses algorithm {pt['algorithm'][:64]!r}, which this reader does not "
                          f"know (it knows zstd-prefix); upgrade pycpkg to read it")
        need(_int(pt.get("size"), 0, 2**63 - 1) and _int(pt.get("window_log"), 10, 31)
             and all(isinstance(pt.get(k), str) and HEX64.fullmatch(pt[k]) for k in ("sha256", "base_sha256", "result_sha256")),
             f"patch {i}: needs size, window_log (10-31), sha256, base_sha256 and result_sha256 (64 lowercase hex)")
    changed = m.get("changed")
    need(isinstance(changed, list) and len(changed) <= LIMITS["entries"], "changed must be an array of objects")
    whole, made = {}, [[] for _ in patches]
    for f in changed:
        _check_entry_fields(f, "changed")
        has_sha, has_patch, has_base = "sha256" in f, "patch" in f, "base_size" in f
        if has_sha:
            need(not has_patch and not has_base, f"changed {f['path']!r}: sha256 and a patch are exclusive")
            need(isinstance(f["sha256"], str) and HEX64.fullmatch(f["sha256"]), f"changed {f['path']!r}: bad sha256")
            whole[f["path"]] = f
        else:
            need(has_patch and has_base, f"changed {f['path']!r}: needs either sha256, or patch and base_size")
            need(_int(f["patch"], 0, len(patches) - 1), f"changed {f['path']!r}: patch {f['patch']!r} is not an index into patches")
            need(_int(f["base_size"], 0, 2**63 - 1), f"changed {f['path']!r}: bad base_size")
            made[f["patch"]].append(f)
    paths = [f["path"] for f in changed]
    need(_sorted_unique(paths), "changed not sorted by the bytes of path, or a duplicate")
    pset = set(paths)
    need(not pset & set(m["removed"]), "a changed path is also removed")
    need(not any(p[:i] in pset for p in paths for i, c in enumerate(p) if c == "/"),
         "a changed path is the parent directory of another changed path")
    for i, fs in enumerate(made):
        need(fs, f"patch {i} makes no file")
        need(sum(f["base_size"] + f["size"] for f in fs) <= LIMITS["window"],
             f"patch {i} needs {sum(f['base_size'] + f['size'] for f in fs)} bytes of memory (base plus result), "
             f"more than the limit of {LIMITS['window']}", 10)
    return whole


def check_manifest(m):
    """Enforce §3 (and §3.5 for format 2); return ({path: file entry} the package carries whole, created, expires)."""
    need = _need
    fmt = _check_format(m)
    need(isinstance(m.get("type"), str) and TYPE_RE.fullmatch(m["type"]), f"bad type {m.get('type')!r}")
    need(_int(m.get("revision"), 1, 2**64 - 1), "bad revision")
    need(m.get("kind") in ("full", "delta"), "kind must be full or delta")
    created, expires = parse_time(m.get("created"), "created"), parse_time(m.get("expires"), "expires")
    need(expires > created, "expires must be after created")
    prov = m.get("provenance")
    need(isinstance(prov, dict) and all(isinstance(v, str) for v in prov.values()), "provenance must map strings to strings")
    if fmt == 2:
        need(m["kind"] == "delta", "a format 2 package must be a delta (a full package is always format 1)")
        need(_int(m.get("base"), 1, m["revision"] - 1), "delta base must be an integer below revision")
        need(isinstance(m.get("removed"), list) and all(isinstance(p, str) for p in m["removed"]),
             "removed must be an array of strings")
        [check_path(p) for p in m["removed"]]
        need(_sorted_unique(m["removed"]), "removed not sorted, or a duplicate")
        return _check_format2(m), created, expires
    files = m.get("files")
    need(isinstance(files, list), "files must be an array")
    for f in files:
        need(isinstance(f, dict) and isinstance(f.get("sha256"), str) and HEX64.fullmatch(f["sha256"]),
             f"bad file entry {str(f)[:200]}")
        _check_entry_fields(f, "file")
    paths = [f["path"] for f in files]
    need(_sorted_unique(paths), "files not sorted by UTF-8 bytes, or a duplicate")
    pset = set(paths)
    need(not any(p[:i] in pset for p in paths for i, c in enumerate(p) if c == "/"), "a path is both a file and a directory")
    if m["kind"] == "full":
        need(not {"base", "changed", "removed"} & m.keys(), "a full package has no base, changed or removed")
        carried = pset
    else:
        need(_int(m.get("base"), 1, m["revision"] - 1), "delta base must be an integer below revision")
        for k in ("changed", "removed"):
            need(isinstance(m.get(k), list) and all(isinstance(p, str) for p in m[k]), f"{k} must be an array of strings")
            [check_path(p) for p in m[k]]
            need(_sorted_unique(m[k]), f"{k} not sorted, or a duplicate")
        need(set(m["changed"]) <= pset, "changed lists a path not in files")
        need(not set(m["removed"]) & pset, "removed lists a path in files")
        carried = set(m["changed"])
    return {f["path"]: f for f in files if f["path"] in carried}, created, expires


# ---- reading (§1, §2) ----
class _GzipMembers(io.RawIOBase):
    """gzip members back to back, and nothing else (§1): GzipFile would stop quietly at zero
    padding, and a tail that is not a gzip member must be refused, not ignored."""
    def __init__(self, raw):
        self.raw, self.d, self.buf = raw, zlib.decompressobj(31), b""
    def readable(self): return True
    def readinto(self, b):
        while not self.buf:
            chunk = self.raw.read(1 << 16)
            if self.d.eof:
                rest = self.d.unused_data + chunk
                if not rest:
                    return 0
                if rest[:2] != b"\x1f\x8b":
                    raise Refused("bytes after the end of the compressed stream")
                self.d = zlib.decompressobj(31)
                chunk = rest
            elif not chunk:
                raise Refused("truncated gzip stream")
            self.buf = self.d.decompress(chunk)
        n = min(len(b), len(self.buf))
        b[:n], self.buf = self.buf[:n], self.buf[n:]
        return n


def _drain(tf, raw, pkg_size):
    """§1: after the end-of-archive block only zero bytes, and nothing after the compressed stream."""
    while chunk := tf.fileobj.read(1 << 16):
        if chunk.strip(b"\0"):
            raise Refused("data after the tar end-of-archive block")
    if raw.tell() != pkg_size:  # a plain tar's stream is the file; the decoders read to its end
        raise Refused(f"{pkg_size - raw.tell()} bytes after the end of the archive")


def _regular(m):
    """§2: type flag '0', NUL or '7', no sparse map, and no link name from a GNU 'K' header or a
    pax linkpath (libarchive would read the entry as a hard link). tarfile merges those into
    `linkname`; the ustar linkname field of a regular file (≤ 100 bytes) is ignored by all."""
    return (m.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) and m.sparse is None
            and "linkpath" not in m.pax_headers and len(m.linkname.encode("utf-8", "surrogateescape")) <= 100)


_GLOBAL_FORBIDDEN = ("path", "linkpath", "size", "hdrcharset")


def _check_globals(tf):
    """§2: a pax global ('g') header must not set what readers disagree on applying."""
    for k in tf.pax_headers:
        if k in _GLOBAL_FORBIDDEN or k.startswith("GNU.sparse."):
            raise Refused(f"pax global header sets {k!r}")


def read_package(path, trust, now=None, skew=300, threshold=1, sink=None, on_manifest=None, manifest_only=False,
                 patch_sink=None):
    """Verify the package at PATH completely. sink(path, entry, chunks) receives each payload file
    (after signatures and manifest passed) and must consume chunks; patch_sink(i, patch, chunks) the
    same for each `patches/<i>` entry of a format 2 delta. Returns (manifest, key ids)."""
    trusted, revoked = load_trust(trust) if isinstance(trust, str) else trust
    now, pkg_size = time.time() if now is None else now, max(os.path.getsize(path), 1)
    with open(path, "rb") as raw:
        magic = raw.peek(4)[:4]
        if magic == b"\x28\xb5\x2f\xfd":
            if zstandard is None:
                raise Refused("zstd package, but the Python module zstandard is not installed")
            stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        else:
            stream = io.BufferedReader(_GzipMembers(raw)) if magic[:2] == b"\x1f\x8b" else raw
        try:
            with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as tf:
                entries = iter(tf)
                def first(name, limit):
                    m = next(entries, None)
                    _check_globals(tf)
                    if m is None or m.name != name or not _regular(m):
                        raise Refused(f"entry {name} missing, misplaced or not a regular file")
                    if m.size > limit:
                        raise Refused(f"{name} is larger than {limit} bytes", 10)
                    return tf.extractfile(m).read()
                mbytes, sbytes = first(MANIFEST, LIMITS["manifest"]), first(SIGS, LIMITS["sigs"])
                keyids = check_signatures(mbytes, sbytes, trusted, revoked, threshold)
                manifest = _json(mbytes, MANIFEST)
                carried, created, expires = check_manifest(manifest)
                if manifest_only:
                    return manifest, keyids
                if now > expires + skew:
                    raise Refused(f"expired at {manifest['expires']}", 8)
                if created > now + skew:
                    raise Refused(f"created in the future ({manifest['created']}); clocks disagree", 8)
                if on_manifest:
                    on_manifest(manifest)
                seen, seen_patches, total = set(), set(), 0
                patches = manifest.get("patches", []) if manifest["format"] == 2 else []
                for count, m in enumerate(entries, 3):
                    total += m.size
                    if count > LIMITS["entries"] or total > LIMITS["total"] or (
                            tf.offset > 16 << 20 and tf.offset + m.size > LIMITS["ratio"] * pkg_size):
                        raise Refused("limit exceeded (entries, total size or expansion ratio)", 10)
                    _check_globals(tf)
                    if not _regular(m):
                        raise Refused(f"{m.name!r}: not a regular file", 10)
                    if m.name.startswith("patches/") and patches:
                        _read_patch_entry(tf, m, patches, seen_patches, patch_sink)
                        continue
                    if not m.name.startswith("payload/"):
                        raise Refused(f"unexpected entry {m.name!r}", 10)
                    p = check_path(m.name[len("payload/"):])
                    f = carried.get(p)
                    if f is None or p in seen:
                        raise Refused(f"payload {p!r} is {'repeated' if f else 'not carried by the manifest'}", 10)
                    mode = m.mode & ~stat.S_IFREG  # some writers put the file type bits in the mode field
                    if mode & ~0o777:
                        raise Refused(f"payload {p!r}: mode {m.mode:o} is not permission bits only", 10)
                    if mode != int(f["mode"], 8) or m.size != f["size"]:
                        raise Refused(f"payload {p!r}: mode {mode:04o} / size {m.size} differ from the manifest", 11)
                    seen.add(p)
                    h, src = hashlib.sha256(), tf.extractfile(m)
                    def chunks():
                        while chunk := src.read(1 << 20):
                            h.update(chunk)
                            yield chunk
                    sink(p, f, chunks()) if sink else [None for _ in chunks()]
                    if h.hexdigest() != f["sha256"]:
                        raise Refused(f"payload {p!r}: SHA-256 differs from the manifest", 11)
                _drain(tf, raw, os.path.getsize(path))
                if set(carried) - seen:
                    raise Refused(f"carried file(s) missing: {sorted(set(carried) - seen)[:5]}", 11)
                if len(seen_patches) != len(patches):
                    missing = sorted(set(range(len(patches))) - seen_patches)[:5]
                    raise Refused(f"patch entr(y/ies) missing: {['patches/%d' % i for i in missing]}", 11)
                return manifest, keyids
        except (tarfile.TarError, EOFError, zlib.error, *_ZERR) as e:
            raise Refused(f"corrupt container: {e}")



def _read_patch_entry(tf, m, patches, seen, patch_sink):
    """§2, §3.5: `patches/<i>` (decimal, no leading zero) for a patch i of the manifest, once, mode
    0644, of the patch's size and SHA-256."""
    match = PATCH_RE.fullmatch(m.name)
    i = int(match.group(1)) if match else -1
    if not 0 <= i < len(patches):
        raise Refused(f"unexpected entry {m.name!r} (not patches/<i> for a patch of the manifest)", 10)
    if i in seen:
        raise Refused(f"patch entry {m.name!r} is repeated", 10)
    mode, pt = m.mode & ~stat.S_IFREG, patches[i]
    if mode != 0o644:
        raise Refused(f"patch entry {m.name!r}: mode {mode:04o}, not 0644", 10 if mode & ~0o777 else 11)
    if m.size != pt["size"]:
        raise Refused(f"patch entry {m.name!r}: size {m.size} differs from the manifest's {pt['size']}", 11)
    seen.add(i)
    h, src = hashlib.sha256(), tf.extractfile(m)
    def chunks():
        while chunk := src.read(1 << 20):
            h.update(chunk)
            yield chunk
    patch_sink(i, pt, chunks()) if patch_sink else [None for _ in chunks()]
    if h.hexdigest() != pt["sha256"]:
        raise Refused(f"patch entry {m.name!r}: SHA-256 differs from the manifest", 11)


# ---- extracting (§5) ----
def _walk(root):
    """{path: full path} of the regular files under root; anything but files and directories is refused."""
    found = {}
    for d, dirs, names in os.walk(root):
        for n in dirs + names:
            full = os.path.join(d, n)
            mode = os.lstat(full).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise Refused(f"{full}: not a regular file or directory", 10)
            if stat.S_ISREG(mode):
                found[os.path.relpath(full, root).replace(os.sep, "/")] = full
    return found


def _sha(full):
    with open(full, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def extract(pkg, trust, into, base=None, **kw):
    """Apply a full package into a missing or empty INTO, or a delta on a copy of BASE into a missing INTO."""
    if os.path.lexists(into) and (base or not os.path.isdir(into) or os.listdir(into)):
        raise Refused(f"{into}: must be missing" + ("" if base else " or an empty directory"), 12)
    tmp = tempfile.mkdtemp(prefix=".pycpkg-", dir=os.path.dirname(os.path.abspath(into)))
    try:
        if base:
            _walk(base)  # no links or devices in the base, so nothing below can escape tmp
            shutil.copytree(base, tmp, dirs_exist_ok=True)

        def start(m):
            if (m["kind"] == "delta") != bool(base):
                raise Refused("a delta needs --base, a full package must not have one", 64)
            for p in m.get("removed", []):
                full = os.path.join(tmp, *p.split("/"))
                if os.path.isfile(full) and not os.path.islink(full):
                    os.unlink(full)
                for d in range(p.count("/"), 0, -1):  # drop directories that became empty
                    parent = os.path.join(tmp, *p.split("/")[:d])
                    if os.path.isdir(parent) and not os.listdir(parent):
                        os.rmdir(parent)

        def write(p, f, chunks):
            parts, cur = p.split("/"), tmp
            for comp in parts[:-1]:
                cur = os.path.join(cur, comp)
                if not os.path.isdir(cur):
                    os.mkdir(cur, 0o755)
                    os.chmod(cur, 0o755)
            target = os.path.join(cur, parts[-1])
            if os.path.isfile(target):
                os.unlink(target)  # replaced as a new file
            with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb") as out:
                for c in chunks:
                    out.write(c)
                os.fchmod(out.fileno(), int(f["mode"], 8))

        def start2(m):
            start(m)
            if m["format"] == 2:
                for f in m["changed"]:  # §3.5: refuse a base that is not the delta's before reading payload
                    if "patch" in f:
                        _base_file(base, m, f)

        patch_files = {}
        def keep_patch(i, pt, chunks):
            patch_files[i] = tempfile.TemporaryFile()
            for c in chunks:
                patch_files[i].write(c)

        try:
            manifest, keyids = read_package(pkg, trust, sink=write, on_manifest=start2, patch_sink=keep_patch, **kw)
            if manifest["format"] == 2:
                for i, pt in enumerate(manifest["patches"]):  # everything is verified: now apply the patches
                    _apply_patch(manifest, i, [f for f in manifest["changed"] if f.get("patch") == i],
                                 base, patch_files[i], write)
        finally:
            for fh in patch_files.values():
                fh.close()
        if manifest["format"] == 2:
            _check_result2(manifest, tmp)
            return _finish(tmp, into, manifest, keyids)
        files, found = {f["path"]: f for f in manifest["files"]}, _walk(tmp)
        if set(found) != set(files):
            raise Refused(f"result differs from the manifest's file list: {sorted(set(found) ^ set(files))[:5]}", 11)
        for p, full in found.items():
            st, f = os.lstat(full), files[p]
            if st.st_mode & 0o7777 != int(f["mode"], 8) or st.st_size != f["size"] or _sha(full) != f["sha256"]:
                raise Refused(f"result file {p!r} differs from the manifest", 11)
        return _finish(tmp, into, manifest, keyids)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _finish(tmp, into, manifest, keyids):
    os.chmod(tmp, 0o755)
    if os.path.isdir(into):
        os.rmdir(into)
    os.rename(tmp, into)
    return manifest, keyids


def _base_mismatch(m, why):
    return Refused(f"base-mismatch: delta {m['type']} {m['base']} -> {m['revision']}: {why}; this base tree is not "
                   f"the tree of revision {m['base']} the delta was built from (apply the full package instead)", 11)


def _base_file(base, m, f):
    """§3.5: the base tree's file at a patched path must be a regular file of `base_size` bytes."""
    full = os.path.join(base, *f["path"].split("/"))
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        raise _base_mismatch(m, f"base file {f['path']!r} is missing")
    if not stat.S_ISREG(st.st_mode):
        raise _base_mismatch(m, f"base file {f['path']!r} is not a regular file")
    if st.st_size != f["base_size"]:
        raise _base_mismatch(m, f"base file {f['path']!r} has {st.st_size} bytes, the delta's base has {f['base_size']}")
    return full


def _apply_patch(m, i, files, base, patch_file, write):
    """§3.5: check the base files' sizes and the base's SHA-256, decode patches/<i> (one zstd frame)
    with the base as a raw-content prefix into exactly the result's size, check the result's SHA-256,
    and write its files."""
    pt, name = m["patches"][i], f"patches/{i}"
    fulls = [_base_file(base, m, f) for f in files]
    buf, h = bytearray(), hashlib.sha256()
    for f, full in zip(files, fulls):
        with os.fdopen(os.open(full, os.O_RDONLY | os.O_NOFOLLOW), "rb") as src:
            data = src.read(f["base_size"] + 1)
        if len(data) != f["base_size"]:
            raise _base_mismatch(m, f"base file {f['path']!r} changed size while it was read")
        buf += data
        h.update(data)
    if h.hexdigest() != pt["base_sha256"]:
        raise _base_mismatch(m, f"the base files of patch {i} ({', '.join(repr(f['path']) for f in files[:5])}"
                                f"{', ...' if len(files) > 5 else ''}) do not hash to its base_sha256")
    if zstandard is None:
        raise Refused("format 2 delta with patches, but the Python module zstandard is not installed")
    want = sum(f["size"] for f in files)
    patch_file.seek(0)
    head = patch_file.read(18)
    if head[:4] != ZSTD_MAGIC:
        raise Refused(f"{name}: not a zstd frame", 11)
    try:
        params = zstandard.get_frame_parameters(head)
        if params.content_size not in (zstandard.CONTENTSIZE_UNKNOWN, want):
            raise Refused(f"{name}: the frame declares {params.content_size} bytes, the result has {want}", 11)
        dctx = zstandard.ZstdDecompressor(
            dict_data=zstandard.ZstdCompressionDict(bytes(buf), dict_type=zstandard.DICT_TYPE_RAWCONTENT),
            max_window_size=1 << pt["window_log"])
        obj, out = dctx.decompressobj(), bytearray()
        patch_file.seek(0)
        while chunk := patch_file.read(4096):  # small steps: the output is checked against the result's size
            if obj.eof:
                raise Refused(f"{name}: data after its one zstd frame", 11)
            out += obj.decompress(chunk)
            if len(out) > want:
                raise Refused(f"{name}: decodes to more than the result's {want} bytes", 11)
        if not obj.eof:
            raise Refused(f"{name}: the zstd frame is truncated ({len(out)} of {want} bytes decoded)", 11)
        if obj.unused_data:
            raise Refused(f"{name}: data after its one zstd frame", 11)
    except zstandard.ZstdError as e:
        raise Refused(f"{name}: does not decode against its base ({e})", 11)
    if len(out) != want:
        raise Refused(f"{name}: decodes to {len(out)} bytes, the result has {want}", 11)
    if hashlib.sha256(out).hexdigest() != pt["result_sha256"]:
        raise Refused(f"{name}: the result does not hash to its result_sha256", 11)
    del buf
    at = 0
    for f in files:
        write(f["path"], f, [bytes(out[at:at + f["size"]])])
        at += f["size"]


def _check_result2(m, tmp):
    """§3.5: each changed file's size, mode and (whole files) SHA-256, then the whole tree against `result`."""
    for f in m["changed"]:
        full = os.path.join(tmp, *f["path"].split("/"))
        st = os.lstat(full) if os.path.lexists(full) else None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != f["size"] or st.st_mode & 0o7777 != int(f["mode"], 8) or (
                "sha256" in f and _sha(full) != f["sha256"]):
            raise Refused(f"result file {f['path']!r} differs from the manifest's changed entry", 11)
    files = []
    for p, full in _walk(tmp).items():
        st = os.lstat(full)
        files.append((p, st.st_size, _sha(full), "%04o" % (st.st_mode & 0o7777)))
    res, got = m["result"], dict(files=len(files), bytes=sum(f[1] for f in files), digest=file_list_digest(files))
    for k in ("files", "bytes", "digest"):
        if got[k] != res[k]:
            raise Refused(f"the resulting tree differs from the manifest's result: {k} {got[k]} != {res[k]} "
                          f"(is the base tree the delta's base, revision {m['base']}?)", 11)


# ---- writing ----
def scan_tree(tree):
    """The sorted `files` list of a directory tree (regular files only; directories are implied)."""
    files = []
    for rel, full in _walk(tree).items():
        st = os.lstat(full)
        if st.st_mode & 0o7000:
            raise Refused(f"{full}: setuid, setgid or sticky bit", 10)
        files.append(dict(path=check_path(rel), size=st.st_size, sha256=_sha(full), mode="%04o" % (st.st_mode & 0o777)))
    return sorted(files, key=lambda f: f["path"].encode())


class _HashingReader:
    def __init__(self, f): self.f, self.h = f, hashlib.sha256()
    def read(self, n=-1):
        data = self.f.read(n)
        self.h.update(data)
        return data


def build(tree, type_, revision, key, out, delta_from=None, compression=None, created=None, lifetime=30 * 86400,
          expires=None, provenance=None, extra=None, json_indent=None, extra_keys=(), reverse_payload=False,
          tar_format=tarfile.PAX_FORMAT):
    """Write a signed package. The keyword arguments after `lifetime` exist for the interop tests
    (expired packages, unknown manifest keys, indented JSON, extra signers, payload order, GNU tar)."""
    key = load_secret(key) if isinstance(key, str) else key
    compression = compression or ("zstd" if zstandard else "gzip")
    created = int(time.time()) if created is None else created
    files = scan_tree(tree)
    m = dict(format=1, type=type_, revision=revision, kind="full", created=fmt_time(created),
             expires=fmt_time(created + lifetime if expires is None else expires),
             provenance=provenance or {"source": tree, "tool": "pycpkg"}, files=files, **(extra or {}))
    carried = files
    if delta_from:
        bm, _ = read_package(delta_from, ({keyid(_raw_pub(key)): key.public_key()}, {}), manifest_only=True)
        if bm["type"] != type_ or bm["revision"] >= revision:
            raise Refused(f"{delta_from}: not an earlier package of type {type_}", 64)
        if "files" not in bm or bm["format"] != 1:
            raise Refused(f"{delta_from}: a format {bm['format']} delta has no complete file list; build against a full package", 64)
        old, new = {f["path"]: f for f in bm["files"]}, {f["path"] for f in files}
        carried = [f for f in files if old.get(f["path"]) != f]
        m.update(kind="delta", base=bm["revision"], changed=[f["path"] for f in carried],
                 removed=sorted((p for p in old if p not in new), key=str.encode))
    check_manifest(m)
    mbytes = json.dumps(m, sort_keys=True, ensure_ascii=False, indent=json_indent,
                        separators=(",", ":") if json_indent is None else (",", ": ")).encode()
    sigs = [dict(algorithm="ed25519", keyid=keyid(_raw_pub(k)), signature=b64(k.sign(PREFIX + mbytes)))
            for k in [key, *extra_keys]]
    sbytes = json.dumps(dict(format=1, signatures=sigs), sort_keys=True, separators=(",", ":")).encode()

    def info(name, size, mode):
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = size, mode, created, 0, 0, "", ""
        return ti
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), "." + os.path.basename(out) + ".tmp")
    try:
        with open(tmp, "xb") as fh:
            if compression == "zstd":
                if zstandard is None:
                    raise Refused("zstd needs the Python module zstandard", 64)
                z = zstandard.ZstdCompressor(level=3).stream_writer(fh, closefd=False)
            else:
                z = {"gzip": lambda: gzip.GzipFile(filename="", fileobj=fh, mode="wb", mtime=created), "none": lambda: fh}[compression]()
            with tarfile.open(fileobj=z, mode="w|", format=tar_format, encoding="utf-8") as tf:
                tf.addfile(info(MANIFEST, len(mbytes), 0o644), io.BytesIO(mbytes))
                tf.addfile(info(SIGS, len(sbytes), 0o644), io.BytesIO(sbytes))
                for f in reversed(carried) if reverse_payload else carried:
                    with open(os.path.join(tree, *f["path"].split("/")), "rb") as src:
                        r = _HashingReader(src)
                        tf.addfile(info("payload/" + f["path"], f["size"], int(f["mode"], 8)), r)
                        if r.h.hexdigest() != f["sha256"]:
                            raise Refused(f"{f['path']} changed while it was being packaged", 11)
            if z is not fh:
                z.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return m


# ---- command line ----
def _revision(s):
    if not REV_RE.fullmatch(s) or int(s) >= 2**64:
        raise argparse.ArgumentTypeError(f"not a revision: {s!r}")
    return int(s)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="pycpkg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="write OUT (secret, 0600) and OUT.pub")
    k.add_argument("out")
    k.add_argument("--comment", default="")
    b = sub.add_parser("build", help="build one signed package from a directory tree")
    b.add_argument("--tree", required=True)
    b.add_argument("--type", required=True)
    b.add_argument("--revision", required=True, type=_revision)
    b.add_argument("--key", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--delta-from-manifest", metavar="BASE.cpkg")
    b.add_argument("--compression", choices=["zstd", "gzip", "none"])
    b.add_argument("--lifetime", type=int, default=30 * 86400, help="seconds (default 30 days)")
    for name in ("verify", "extract"):
        p = sub.add_parser(name)
        p.add_argument("--trust", required=True)
        p.add_argument("--clock-skew", type=int, default=300, help="seconds (default 300)")
        p.add_argument("--threshold", type=int, default=1)
        p.add_argument("--now", help="pretend the clock reads this time (YYYY-MM-DDTHH:MM:SSZ)")
        p.add_argument("pkg", nargs="+" if name == "verify" else None)
    x = sub.choices["extract"]
    x.add_argument("--into", required=True)
    x.add_argument("--base")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "keygen":
            print(f"wrote {a.out} and {a.out}.pub, key id {keygen(a.out, a.comment)}")
        elif a.cmd == "build":
            m = build(a.tree, a.type, a.revision, a.key, a.out, a.delta_from_manifest, a.compression, lifetime=a.lifetime)
            print(f"wrote {a.out}: {m['kind']}, {len(m['files'])} files")
        else:
            kw = dict(now=a.now and parse_time(a.now, "--now"), skew=a.clock_skew, threshold=a.threshold)
            trust, code = load_trust(a.trust), 0
            for pkg in ([a.pkg] if a.cmd == "extract" else a.pkg):
                try:
                    if a.cmd == "verify":
                        m, ids = read_package(pkg, trust, **kw)
                    else:
                        m, ids = extract(pkg, trust, a.into, a.base, **kw)
                    print(f"OK    {pkg}  {m['type']} {m['revision']} {m['kind']}  key {','.join(ids)}")
                except (Refused, OSError) as e:
                    print(f"FAIL  {pkg}  {e}")
                    code = code or getattr(e, "code", 12)
            return code
    except (Refused, OSError) as e:
        print(f"pycpkg {a.cmd}: error: {e}", file=sys.stderr)
        return getattr(e, "code", 12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
