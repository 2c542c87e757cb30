"""A TUF repository simulator for the interop tests, built on python-tuf's tuf.api.metadata.

The simulator keeps two things apart on purpose:
  * the *working* metadata (`Repo.md[role]`), which a test edits freely;
  * what is *served* (`Repo.served`, URL path below the repository root -> bytes), which only
    changes when the test publishes or overrides it.
That split is what lets a test serve attacks: an old version again (rollback), a snapshot
from one publication with targets from another (mix and match), an artifact whose bytes do
not match the metadata (tamper), a body that never ends (endless data).

Layout served (see server.py):  metadata/N.root.json, metadata/timestamp.json,
metadata/ROLE.json, and with consistent snapshots metadata/N.ROLE.json; targets/PATH, and with
consistent snapshots targets/DIR/HASH.BASENAME. ROLE is percent-encoded the way the TUF
specification's reference (python-tuf) encodes it: urllib.parse.quote(role, safe="").
"""
from __future__ import annotations

import datetime
import hashlib
from urllib.parse import quote

from securesystemslib.signer import CryptoSigner
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


# Far enough that `faketime +400d` (the expiry tests) leaves metadata not under test valid.
FAR = 3650


class Repo:
    def __init__(self, key_type: str = "ed25519", consistent_snapshot: bool = False, meta_hashes: bool = False):
        self.key_type = key_type
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

        self.md["root"] = Metadata(Root(expires=days(FAR), consistent_snapshot=consistent_snapshot))
        self.md["timestamp"] = Metadata(Timestamp(expires=days(FAR)))
        self.md["snapshot"] = Metadata(Snapshot(expires=days(FAR)))
        self.md["targets"] = Metadata(Targets(expires=days(FAR)))
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
        paths = [f"targets/{path}"]
        if self.root.consistent_snapshot:
            d, sep, base = path.rpartition("/")
            paths = [f"targets/{d}{sep}{hashlib.sha256(self.artifacts[path]).hexdigest()}.{base}"]
        return paths

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
            self.md[name] = Metadata(Targets(expires=days(FAR)))
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
            self.md[n] = Metadata(Targets(expires=days(FAR)))
            self.signers[n] = [signer]
        return names

    def bin_for(self, delegator: str, target_path: str) -> str:
        return self.role(delegator).delegations.succinct_roles.get_role_for_target(target_path)
