#!/usr/bin/env python3
"""A TUF repository for scripts/bench/tuf.sh, made with python-tuf's metadata API.

    make_repo.py OUT N SIZE

OUT/metadata/{1.root,root,timestamp,snapshot,targets}.json (consistent_snapshot off: the
non-versioned names are served), OUT/targets/<name> for N targets of SIZE bytes each, named
like the files of a signature set (daily-0001.ndb …), all signed by one ed25519 key per role.
OUT/root.json is the trusted root a client starts from.
"""
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp,
)
from tuf.api.serialization.json import JSONSerializer


def main() -> None:
    out, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    meta_dir, target_dir = os.path.join(out, "metadata"), os.path.join(out, "targets")
    os.makedirs(meta_dir, exist_ok=True)
    os.makedirs(target_dir, exist_ok=True)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    signers = {r: CryptoSigner.generate_ed25519() for r in ("root", "timestamp", "snapshot", "targets")}

    root = Root(expires=expires, consistent_snapshot=False)
    for role, signer in signers.items():
        root.add_key(signer.public_key, role)
    targets = Targets(expires=expires)
    for i in range(n):
        name = f"daily-{i:04d}.ndb"
        # Distinct, signature-like content per file.
        line = f"Bench.Sig.{i}:0:*:" + os.urandom(24).hex() + "\n"
        data = (line * (size // len(line) + 1))[:size].encode()
        with open(os.path.join(target_dir, name), "wb") as f:
            f.write(data)
        targets.targets[name] = TargetFile.from_data(name, data, ["sha256"])
    snapshot = Snapshot(expires=expires)
    snapshot.meta["targets.json"] = MetaFile(version=targets.version)
    timestamp = Timestamp(expires=expires)
    timestamp.snapshot_meta = MetaFile(version=snapshot.version)

    ser = JSONSerializer(compact=True)
    for name, signed in (("root", root), ("targets", targets), ("snapshot", snapshot), ("timestamp", timestamp)):
        md = Metadata(signed)
        md.sign(signers[name])
        data = md.to_bytes(ser)
        with open(os.path.join(meta_dir, f"{name}.json"), "wb") as f:
            f.write(data)
        if name == "root":
            with open(os.path.join(meta_dir, "1.root.json"), "wb") as f:
                f.write(data)
            with open(os.path.join(out, "root.json"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
