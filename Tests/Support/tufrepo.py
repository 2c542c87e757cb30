#!/usr/bin/env python3
"""The TUF repository of Courier's tests, built on python-tuf 7.0.1's tuf.api.metadata: one module
for the Python interop tests (Tests/interop/tuf, which import it) and the Swift tests and scripts
(which run it as a program on a directory).

The repository keeps two things apart on purpose:
  * the *working* metadata (`Repo.md[role]`), which a test edits freely;
  * what is *served* (`Repo.served`, URL path below the repository root -> bytes), which only
    changes when the test publishes or overrides it.
That split is what lets a test serve attacks: an old version again (rollback), a snapshot
from one publication with targets from another (mix and match), an artifact whose bytes do
not match the metadata (tamper), a body that never ends (endless data).

Layout served (see tufserver.py):  metadata/N.root.json, metadata/timestamp.json,
metadata/ROLE.json, and with consistent snapshots metadata/N.ROLE.json; targets/PATH, and with
consistent snapshots targets/DIR/HASH.BASENAME. ROLE is percent-encoded the way the TUF
specification's reference (python-tuf) encodes it: urllib.parse.quote(role, safe="").

As a program, each command loads the repository from DIR, changes it and saves it back:

    tufrepo.py DIR init [--consistent] [--expired-root]
    tufrepo.py DIR add-target NAME CONTENT|@FILE [NAME CONTENT|@FILE ...] [--role ROLE]
    tufrepo.py DIR delegate ROLE PATTERN
    tufrepo.py DIR rotate-root
    tufrepo.py DIR rotate-timestamp-key

DIR holds what is served (metadata/, targets/: what `tufserver.py DIR LOG` publishes; every
version ever published stays) and keys/QUOTED-ROLE.json (each role's private keys and their
schemes). Every change bumps what depends on it (targets -> snapshot -> timestamp) and
re-signs, as a real repository would. A test may change the files under DIR between commands
(a tampered target stays tampered: the next command saves what it loaded).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import sys
from urllib.parse import quote, unquote

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (DelegatedRole, Delegations, Metadata, MetaFile, Root, Snapshot, SuccinctRoles,
                              TargetFile, Targets, Timestamp)
from tuf.api.serialization.json import JSONSerializer

KEY_TYPES = ("ed25519", "ecdsa-sha2-nistp256", "rsassa-pss-sha256", "rsa-pkcs1v15-sha256")
TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")

# Key generation (RSA above all) is the slow part of a test; keys are generated once per process
# and handed out in order. Within one Repo every key is distinct; Repos share keys, which does not
# matter because each test builds its own repository and trusted root.
_POOL: dict[str, list[CryptoSigner]] = {t: [] for t in KEY_TYPES}


def _generate(key_type: str) -> CryptoSigner:
    if key_type == "ed25519":
        return CryptoSigner.generate_ed25519()
    if key_type == "ecdsa-sha2-nistp256":
        return CryptoSigner.generate_ecdsa()
    if key_type in ("rsassa-pss-sha256", "rsa-pkcs1v15-sha256"):
        return CryptoSigner.generate_rsa(scheme=key_type, size=2048)
    raise ValueError(f"unknown key type {key_type}")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def days(n: float) -> datetime.datetime:
    """A time n days from now (negative: in the past)."""
    return now() + datetime.timedelta(days=n)


# Far enough that `faketime +400d` (the interop expiry tests) leaves metadata not under test valid.
FAR = 3650
# The command line's metadata expires within `faketime +400d` (TUFCLITests.expiryFollowsFaketime).
CLI_LIFETIME = 365


class Repo:
    def __init__(self, key_type: str = "ed25519", consistent_snapshot: bool = False, meta_hashes: bool = False,
                 lifetime: float = FAR):
        self.key_type = key_type
        self.lifetime = lifetime  # days from now until new metadata expires
        # meta_hashes: timestamp and snapshot also give the length and sha256 of the files they list.
        self.meta_hashes = meta_hashes
        self._used: dict[str, int] = {t: 0 for t in KEY_TYPES}
        self.md: dict[str, Metadata] = {}
        self.signers: dict[str, list[CryptoSigner]] = {}   # role -> signers used by default
        self.history: dict[str, dict[int, bytes]] = {}     # role -> version -> signed bytes
        self.served: dict[str, bytes] = {}                 # URL path -> bytes
        self.endless: set[str] = set()                     # URL paths answered with endless data
        self.artifacts: dict[str, bytes] = {}              # target path -> true content
        self._root_signers_prev: list[CryptoSigner] = []   # keys of the last published root

        self.md["root"] = Metadata(Root(expires=days(self.lifetime), consistent_snapshot=consistent_snapshot))
        self.md["timestamp"] = Metadata(Timestamp(expires=days(self.lifetime)))
        self.md["snapshot"] = Metadata(Snapshot(expires=days(self.lifetime)))
        self.md["targets"] = Metadata(Targets(expires=days(self.lifetime)))
        for role in TOP_LEVEL:
            self.add_key(role)
        self.publish_root(bump=False)
        self.publish("targets", bump=False)
        self.update_snapshot(bump=False)

    # ---- accessors ----
    @property
    def root(self) -> Root:
        return self.md["root"].signed

    @property
    def timestamp(self) -> Timestamp:
        return self.md["timestamp"].signed

    @property
    def snapshot(self) -> Snapshot:
        return self.md["snapshot"].signed

    @property
    def targets(self) -> Targets:
        return self.md["targets"].signed

    def role(self, name: str):
        return self.md[name].signed

    def trusted_root(self) -> bytes:
        """Version 1 of root: what clients are initialised with."""
        return self.history["root"][1]

    # ---- keys ----
    def new_signer(self, key_type: str | None = None) -> CryptoSigner:
        key_type = key_type or self.key_type
        i = self._used[key_type]
        self._used[key_type] += 1
        while len(_POOL[key_type]) <= i:
            _POOL[key_type].append(_generate(key_type))
        return _POOL[key_type][i]

    def _delegator_of(self, role: str) -> str:
        if role in TOP_LEVEL:
            return "root"
        for name, md in self.md.items():
            d = getattr(md.signed, "delegations", None)
            if d is not None and d.roles and role in d.roles:
                return name
        raise KeyError(f"no delegator for {role}")

    def add_key(self, role: str, signer: CryptoSigner | None = None, key_type: str | None = None) -> CryptoSigner:
        """Authorise one more key for role (in root or in the role's delegator) and sign with it."""
        signer = signer or self.new_signer(key_type)
        self.role(self._delegator_of(role)).add_key(signer.public_key, role)
        self.signers.setdefault(role, []).append(signer)
        return signer

    def rotate_keys(self, role: str, count: int | None = None, key_type: str | None = None) -> None:
        """Replace all keys of role by `count` new ones (default: the threshold)."""
        delegator = self.role(self._delegator_of(role))
        spec = delegator.roles[role] if role in TOP_LEVEL else delegator.delegations.roles[role]
        for keyid in list(spec.keyids):
            delegator.revoke_key(keyid, role)
        self.signers[role] = []
        for _ in range(count or spec.threshold):
            self.add_key(role, key_type=key_type)

    def set_threshold(self, role: str, threshold: int) -> None:
        delegator = self.role(self._delegator_of(role))
        spec = delegator.roles[role] if role in TOP_LEVEL else delegator.delegations.roles[role]
        spec.threshold = threshold

    # ---- publishing ----
    def sign(self, role: str, signers: list[CryptoSigner] | None = None) -> bytes:
        """Sign the working copy of role with `signers` (default: the role's keys) and return the bytes."""
        md = self.md[role]
        md.signatures.clear()
        for s in self.signers[role] if signers is None else signers:
            md.sign(s, append=True)
        return md.to_bytes(JSONSerializer(compact=False))

    def _path(self, role: str, version: int | None) -> str:
        name = quote(role, safe="") + ".json"
        return f"metadata/{version}.{name}" if version is not None else f"metadata/{name}"

    def publish(self, role: str, bump: bool = True, signers: list[CryptoSigner] | None = None) -> bytes:
        """Bump (optionally), sign and serve a non-root role; returns the served bytes."""
        assert role != "root", "use publish_root"
        md = self.md[role]
        if bump and role in self.history:  # a role's first publication is its version 1
            md.signed.version += 1
        data = self.sign(role, signers)
        self.history.setdefault(role, {})[md.signed.version] = data
        self.served[self._path(role, None)] = data
        if role != "timestamp":
            # Versioned copies are served whether or not consistent_snapshot is on: a client that
            # asks for them without the flag is wrong, and the request log shows it.
            self.served[self._path(role, md.signed.version)] = data
        return data

    def publish_root(self, bump: bool = True, signers: list[CryptoSigner] | None = None) -> bytes:
        """Publish root as N.root.json. By default signed by the keys of the new root AND of the
        previous one, which is what a valid rotation needs; pass `signers` to publish a bad one."""
        md = self.md["root"]
        if bump:
            md.signed.version += 1
        if signers is None:
            signers = list({s.public_key.keyid: s for s in self._root_signers_prev + self.signers["root"]}.values())
        data = self.sign("root", signers)
        self.history.setdefault("root", {})[md.signed.version] = data
        self.served[self._path("root", md.signed.version)] = data
        self._root_signers_prev = list(self.signers["root"])
        return data

    def _metafile(self, role: str) -> MetaFile:
        version = self.md[role].signed.version
        if not self.meta_hashes:
            return MetaFile(version)
        data = self.history[role][version]
        return MetaFile(version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})

    def update_timestamp(self, bump: bool = True, signers: list[CryptoSigner] | None = None) -> bytes:
        self.timestamp.snapshot_meta = self._metafile("snapshot")
        return self.publish("timestamp", bump, signers)

    def update_snapshot(self, bump: bool = True, signers: list[CryptoSigner] | None = None) -> None:
        """Snapshot lists the current version of every targets role published so far; then timestamp."""
        for role, versions in self.history.items():
            if role not in TOP_LEVEL or role == "targets":
                self.snapshot.meta[f"{role}.json"] = self._metafile(role)
        self.publish("snapshot", bump, signers)
        self.update_timestamp(bump)

    def bump_targets(self, *roles: str, signers: list[CryptoSigner] | None = None) -> None:
        """Publish new versions of the given targets roles (default: targets), then snapshot and timestamp."""
        for role in roles or ("targets",):
            self.publish(role, signers=signers)
        self.update_snapshot()

    def bump(self, role: str, signers: list[CryptoSigner] | None = None) -> None:
        """Publish a new version of one role (signed by `signers` if given) and whatever must follow it."""
        if role == "root":
            self.publish_root(signers=signers)
        elif role == "timestamp":
            self.update_timestamp(signers=signers)
        elif role == "snapshot":
            self.update_snapshot(signers=signers)
        else:
            self.bump_targets(role, signers=signers)

    # ---- targets ----
    def target_url_paths(self, path: str) -> list[str]:
        """URL paths under which the artifact `path` is served."""
        return [self._target_url_path(path, hashlib.sha256(self.artifacts[path]).hexdigest())]

    def _target_url_path(self, path: str, sha256: str) -> str:
        if not self.root.consistent_snapshot:
            return f"targets/{path}"
        d, sep, base = path.rpartition("/")
        return f"targets/{d}{sep}{sha256}.{base}"

    def add_target(self, role: str, path: str, data: bytes) -> TargetFile:
        """Add an artifact to role's working metadata and serve its bytes (publish role to make it visible)."""
        tf = TargetFile.from_data(path, data, ["sha256"])
        self.role(role).targets[path] = tf
        self.artifacts[path] = data
        for p in self.target_url_paths(path):
            self.served[p] = data
        return tf

    def serve_artifact(self, path: str, data: bytes) -> None:
        """Serve other bytes for an artifact without touching the metadata (a tampered mirror)."""
        for p in self.target_url_paths(path):
            self.served[p] = data

    # ---- delegations ----
    def delegate(self, delegator: str, name: str, paths: list[str] | None = None,
                 hash_prefixes: list[str] | None = None, terminating: bool = False,
                 threshold: int = 1, keys: int = 1, key_type: str | None = None) -> Targets:
        """Delegate from `delegator` to a new targets role `name` (appended last, i.e. lowest priority)."""
        d = self.role(delegator)
        if d.delegations is None:
            d.delegations = Delegations(keys={}, roles={})
        if paths is None and hash_prefixes is None:
            paths = ["*"]
        d.delegations.roles[name] = DelegatedRole(name, [], threshold, terminating, paths, hash_prefixes)
        if name not in self.md:
            self.md[name] = Metadata(Targets(expires=days(self.lifetime)))
            self.signers[name] = [self.new_signer(key_type) for _ in range(keys)]
        # Keys go straight into this delegator: a role delegated twice (a cycle, a diamond) keeps
        # one set of keys, trusted by each delegator.
        for s in self.signers[name]:
            d.add_key(s.public_key, name)
        return self.role(name)

    def succinct(self, delegator: str, bit_length: int, prefix: str) -> list[str]:
        """Hash-bin delegation (TAP 15): 2**bit_length bins `prefix-XX`, one shared key; returns bin names."""
        signer = self.new_signer()
        sr = SuccinctRoles([], 1, bit_length, prefix)
        self.role(delegator).delegations = Delegations(keys={}, roles=None, succinct_roles=sr)
        self.role(delegator).add_key(signer.public_key)
        names = list(sr.get_roles())
        for n in names:
            self.md[n] = Metadata(Targets(expires=days(self.lifetime)))
            self.signers[n] = [signer]
        return names

    def bin_for(self, delegator: str, target_path: str) -> str:
        return self.role(delegator).delegations.succinct_roles.get_role_for_target(target_path)

    # ---- on disk (the command line's state between runs) ----
    def save(self, directory: str) -> None:
        """Write what is served below `directory` (metadata/, targets/) and every role's keys to
        keys/QUOTED-ROLE.json ([{"scheme", "pem"}]: the scheme is not in a PEM file).

        A server may be serving `directory` meanwhile (the torture tests publish while a stager
        polls): only files that changed are written, each by rename, in the order a repository
        publishes (artifacts, then targets roles and root, then snapshot, then timestamp), so a
        reader never sees a half-written file or a timestamp naming a snapshot not there yet."""
        files = {}
        for role, signers in self.signers.items():
            keys = [{"scheme": s.public_key.scheme, "pem": s.private_bytes.decode()} for s in signers]
            files[f"keys/{quote(role, safe='')}.json"] = json.dumps(keys, indent=1).encode()
        order = {"targets": 0, "metadata": 1}
        for rel in sorted(self.served, key=lambda k: (order[k.split("/")[0]] + k.endswith("snapshot.json")
                                                      + 2 * (k == "metadata/timestamp.json"), k)):
            files[rel] = self.served[rel]
        for rel, data in files.items():
            if ".." in rel.split("/"):
                raise ValueError(f"{rel}: a path that leaves {directory}")
            path = os.path.join(directory, rel)
            try:
                with open(path, "rb") as f:
                    if f.read() == data:
                        continue
            except OSError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".tufrepo-tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tufrepo-tmp", path)

    @classmethod
    def load(cls, directory: str) -> Repo:
        """The repository `save` left in `directory` (or a test changed since): the roles are those
        with keys; each one's working metadata is its newest published version, and what is served
        is the files there now."""
        self = cls.__new__(cls)
        self.key_type, self.meta_hashes, self.lifetime = "ed25519", False, CLI_LIFETIME
        self._used = {t: len(_POOL[t]) for t in KEY_TYPES}  # new keys are new, not a saved one again
        self.md, self.signers, self.history, self.served, self.endless, self.artifacts = {}, {}, {}, {}, set(), {}
        for area in ("metadata", "targets"):
            top = os.path.join(directory, area)
            for d, _, names in os.walk(top):
                for n in names:
                    rel = os.path.relpath(os.path.join(d, n), directory)
                    with open(os.path.join(d, n), "rb") as f:
                        self.served[rel] = f.read()
        for n in sorted(os.listdir(os.path.join(directory, "keys"))):
            role = unquote(n[: -len(".json")])
            with open(os.path.join(directory, "keys", n)) as f:
                self.signers[role] = [_signer(k["pem"], k["scheme"]) for k in json.load(f)]
        for key, data in self.served.items():
            m = re.fullmatch(r"metadata/(\d+)\.(.+)\.json", key)
            if m and unquote(m.group(2)) in self.signers:
                self.history.setdefault(unquote(m.group(2)), {})[int(m.group(1))] = data
        if "metadata/timestamp.json" in self.served:
            data = self.served["metadata/timestamp.json"]
            self.history["timestamp"] = {json.loads(data)["signed"]["version"]: data}
        for role, versions in self.history.items():
            self.md[role] = Metadata.from_bytes(versions[max(versions)])
        self._root_signers_prev = list(self.signers["root"])
        for md in self.md.values():  # the true contents: files whose bytes match the metadata
            for path, tf in getattr(md.signed, "targets", {}).items():
                data = self.served.get(self._target_url_path(path, tf.hashes["sha256"]))
                if data is not None and hashlib.sha256(data).hexdigest() == tf.hashes["sha256"]:
                    self.artifacts[path] = data
        return self


def _signer(pem: str, scheme: str) -> CryptoSigner:
    private = load_pem_private_key(pem.encode(), None)
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), scheme=scheme))


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(__doc__)
    directory, cmd, args = argv[0], argv[1], argv[2:]
    if cmd == "init":
        r = Repo(consistent_snapshot="--consistent" in args, lifetime=CLI_LIFETIME)
        if "--expired-root" in args:
            r.root.expires = days(-1)
            r.publish_root(bump=False)
        r.save(directory)
        return
    r = Repo.load(directory)
    if cmd == "add-target":
        role = "targets"
        if "--role" in args:
            i = args.index("--role")
            role = args[i + 1]
            args = args[:i] + args[i + 2:]
        if not args or len(args) % 2:
            sys.exit("add-target takes NAME CONTENT pairs")
        for name, content in zip(args[0::2], args[1::2]):
            if content.startswith("@"):
                with open(content[1:], "rb") as f:
                    data = f.read()
            else:
                data = content.encode()
            r.add_target(role, name, data)
        r.bump_targets(role)
    elif cmd == "delegate":
        r.delegate("targets", args[0], paths=[args[1]])
        r.bump_targets("targets", args[0])
    elif cmd == "rotate-root":
        r.rotate_keys("root")
        r.publish_root()
    elif cmd == "rotate-timestamp-key":
        r.rotate_keys("timestamp")
        r.publish_root()
        r.update_timestamp()
    else:
        sys.exit(f"unknown command {cmd}")
    r.save(directory)


if __name__ == "__main__":
    main(sys.argv[1:])
