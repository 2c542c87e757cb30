#!/usr/bin/env python3
"""A small TUF repository for Courier's TUF tests, made and changed with python-tuf 7.0.1.

    tufrepo.py DIR init [--consistent] [--expired-root]
    tufrepo.py DIR add-target NAME CONTENT|@FILE [NAME CONTENT|@FILE ...] [--role ROLE]
    tufrepo.py DIR delegate ROLE PATTERN
    tufrepo.py DIR rotate-root
    tufrepo.py DIR rotate-timestamp-key

State lives in DIR: keys/ (PEM private keys, one per role name, quoted), metadata/ (what a
web server publishes: N.root.json, timestamp.json, N.ROLE.json and ROLE.json for the others),
targets/ (NAME, and HASH.NAME for consistent snapshots). Every change bumps what depends on it
(targets -> snapshot -> timestamp) and re-signs, as a real repository would.
"""
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from urllib import parse

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (DelegatedRole, Delegations, Metadata, MetaFile, Root,
                              Snapshot, TargetFile, Targets, Timestamp)
from tuf.api.serialization.json import JSONSerializer

SER = JSONSerializer(compact=False)
FUTURE = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=365)
PAST = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)


def q(role):
    return parse.quote(role, "")


class Repo:
    def __init__(self, d):
        self.d = d
        self.md = os.path.join(d, "metadata")
        self.tg = os.path.join(d, "targets")
        self.keys = os.path.join(d, "keys")
        for p in (self.md, self.tg, self.keys):
            os.makedirs(p, exist_ok=True)

    def signer(self, name, new=False):
        path = os.path.join(self.keys, q(name) + ".pem")
        if new or not os.path.exists(path):
            s = CryptoSigner.generate_ed25519()
            with open(path, "wb") as f:
                f.write(s.private_bytes)
            return s
        with open(path, "rb") as f:
            priv = load_pem_private_key(f.read(), None)
        return CryptoSigner(priv)

    def load(self, role):
        if role == "root":
            v = max(int(n.split(".")[0]) for n in os.listdir(self.md) if n.endswith(".root.json"))
            return Metadata.from_file(os.path.join(self.md, f"{v}.root.json"))
        return Metadata.from_file(os.path.join(self.md, f"{q(role)}.json"))

    def consistent(self):
        return self.load("root").signed.consistent_snapshot

    def write(self, role, md, signers):
        md.signatures.clear()
        for s in signers:
            md.sign(s, append=True)
        data = md.to_bytes(SER)
        if role == "root":
            names = [f"{md.signed.version}.root.json"]
        elif role == "timestamp":
            names = ["timestamp.json"]
        else:
            names = [f"{md.signed.version}.{q(role)}.json", f"{q(role)}.json"]
        for n in names:
            with open(os.path.join(self.md, n), "wb") as f:
                f.write(data)
        return data

    def publish_snapshot_and_timestamp(self, changed):
        snap = self.load("snapshot")
        for role in changed:
            v = self.load(role).signed.version
            snap.signed.meta[f"{role}.json"] = MetaFile(version=v)
        snap.signed.version += 1
        self.write("snapshot", snap, [self.signer("snapshot")])
        ts = self.load("timestamp")
        ts.signed.snapshot_meta = MetaFile(version=snap.signed.version)
        ts.signed.version += 1
        self.write("timestamp", ts, [self.signer("timestamp")])

    def init(self, consistent, expired_root):
        root = Root(expires=PAST if expired_root else FUTURE, consistent_snapshot=consistent)
        for role in ("root", "timestamp", "snapshot", "targets"):
            root.add_key(self.signer(role, new=True).public_key, role)
        self.write("root", Metadata(root), [self.signer("root")])
        self.write("targets", Metadata(Targets(expires=FUTURE)), [self.signer("targets")])
        self.write("snapshot", Metadata(Snapshot(expires=FUTURE)), [self.signer("snapshot")])
        self.write("timestamp", Metadata(Timestamp(expires=FUTURE)), [self.signer("timestamp")])

    def add_target(self, pairs, role):
        """pairs: [(name, content or @file)], all in one new version of role."""
        md = self.load(role)
        for name, content in pairs:
            if content.startswith("@"):
                with open(content[1:], "rb") as f:
                    data = f.read()
            else:
                data = content.encode()
            tf = TargetFile.from_data(name, data, ["sha256"])
            dirname, sep, base = name.rpartition("/")
            os.makedirs(os.path.join(self.tg, dirname), exist_ok=True)
            with open(os.path.join(self.tg, name), "wb") as f:
                f.write(data)
            with open(os.path.join(self.tg, dirname, f"{tf.hashes['sha256']}.{base}"), "wb") as f:
                f.write(data)
            md.signed.targets[name] = tf
        md.signed.version += 1
        self.write(role, md, [self.signer(role)])
        self.publish_snapshot_and_timestamp([role])

    def delegate(self, role, pattern):
        s = self.signer(role, new=True)
        targets = self.load("targets")
        if targets.signed.delegations is None:
            targets.signed.delegations = Delegations(keys={}, roles={})
        d = DelegatedRole(name=role, keyids=[], threshold=1, terminating=False, paths=[pattern])
        targets.signed.delegations.roles[role] = d
        targets.signed.add_key(s.public_key, role)
        targets.signed.version += 1
        self.write("targets", targets, [self.signer("targets")])
        self.write(role, Metadata(Targets(expires=FUTURE)), [s])
        self.publish_snapshot_and_timestamp(["targets", role])

    def rotate_root(self):
        root = self.load("root")
        old = self.signer("root")
        new = self.signer("root", new=True)
        for kid in list(root.signed.roles["root"].keyids):
            root.signed.revoke_key(kid, "root")
        root.signed.add_key(new.public_key, "root")
        root.signed.version += 1
        self.write("root", root, [old, new])

    def rotate_timestamp_key(self):
        root = self.load("root")
        for kid in list(root.signed.roles["timestamp"].keyids):
            root.signed.revoke_key(kid, "timestamp")
        root.signed.add_key(self.signer("timestamp", new=True).public_key, "timestamp")
        root.signed.version += 1
        self.write("root", root, [self.signer("root")])
        ts = self.load("timestamp")
        ts.signed.version += 1
        self.write("timestamp", ts, [self.signer("timestamp")])


def main():
    d, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    r = Repo(d)
    if cmd == "init":
        r.init("--consistent" in args, "--expired-root" in args)
    elif cmd == "add-target":
        role = "targets"
        if "--role" in args:
            i = args.index("--role")
            role = args[i + 1]
            args = args[:i] + args[i + 2:]
        if not args or len(args) % 2:
            sys.exit("add-target takes NAME CONTENT pairs")
        r.add_target(list(zip(args[0::2], args[1::2])), role)
    elif cmd == "delegate":
        r.delegate(args[0], args[1])
    elif cmd == "rotate-root":
        r.rotate_root()
    elif cmd == "rotate-timestamp-key":
        r.rotate_timestamp_key()
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
