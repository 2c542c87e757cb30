#!/usr/bin/env python3
"""Writes search_repo.json: a repository made with python-tuf 7.0.1's Metadata API (ed25519,
ecdsa and rsa keys; delegations by paths, by hash prefixes, a terminating role, a role reached
from two delegators, succinct hash bins, a role that lists a path its child also lists) and, for
each looked-up path, what python-tuf's Updater.get_targetinfo finds (the role that listed the
entry, in its custom field) and the order in which it fetched targets roles (fresh client per
lookup). Tests/TUFTests (TUFSearchInteropTests) runs TargetSearch over the same files.
Run: python3 make_search_fixtures.py  (needs `pip install tuf==7.0.1`)."""
import datetime as dt, hashlib, json, os, tempfile
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (Metadata, Root, Timestamp, Snapshot, Targets, MetaFile, TargetFile,
                              DelegatedRole, Delegations, SuccinctRoles)
from tuf.api.serialization.json import JSONSerializer
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import Updater, FetcherInterface

EXP = dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)
K = {n: CryptoSigner.generate_ed25519() for n in ["root", "timestamp", "snapshot", "targets", "A1", "C", "D"]}
K["A"] = CryptoSigner.generate_ecdsa()
K["B"] = CryptoSigner.generate_rsa(size=2048)
K["bins"] = CryptoSigner.generate_ed25519()

def tf(path, role, data=b"x"):
    t = TargetFile.from_data(path, data + path.encode(), ["sha256"])
    t.unrecognized_fields["custom"] = {"role": role}
    return t

def deleg(roles, keys):
    return Delegations(keys={K[k].public_key.keyid: K[k].public_key for k in keys},
                       roles={r.name: r for r in roles})

def dr(name, key, terminating=False, paths=None, prefixes=None):
    return DelegatedRole(name, [K[key].public_key.keyid], 1, terminating, paths=paths, path_hash_prefixes=prefixes)

cprefix = hashlib.sha256(b"c/file").hexdigest()[:2]
roles = {}  # name -> (Targets, signing key)
top = Targets(version=1, expires=EXP)
top.targets["top.txt"] = tf("top.txt", "targets")
top.delegations = deleg([dr("A", "A", paths=["a/*"]), dr("B", "B", True, paths=["b/*", "shared/*"]),
                         dr("C", "C", prefixes=["ff" if cprefix != "ff" else "00", cprefix]), dr("D", "D", paths=["*/*"])],
                        ["A", "B", "C", "D"])
roles["targets"] = (top, "targets")
a = Targets(version=1, expires=EXP)
a.targets["a/one"] = tf("a/one", "A")
a.delegations = deleg([dr("A1", "A1", paths=["a/x*"]), dr("B", "B", paths=["a/*"])], ["A1", "B"])
roles["A"] = (a, "A")
a1 = Targets(version=1, expires=EXP)
a1.targets["a/x1"] = tf("a/x1", "A1")
a1.targets["a/one"] = tf("a/one", "A1")
roles["A1"] = (a1, "A1")
sr = SuccinctRoles([K["bins"].public_key.keyid], 1, 2, "bbin")
b = Targets(version=1, expires=EXP)
b.targets["b/two"] = tf("b/two", "B")
b.delegations = Delegations(keys={K["bins"].public_key.keyid: K["bins"].public_key}, roles=None, succinct_roles=sr)
roles["B"] = (b, "B")
for name in sr.get_roles():
    t = Targets(version=1, expires=EXP)
    for p in ["b/deep", "shared/s", "a/ddd"]:
        if sr.get_role_for_target(p) == name:
            t.targets[p] = tf(p, name)
    roles[name] = (t, "bins")
c = Targets(version=1, expires=EXP)
c.targets["c/file"] = tf("c/file", "C")
roles["C"] = (c, "C")
d = Targets(version=1, expires=EXP)
for p in ["d/four", "b/never", "a/ddd", "c/file"]:
    d.targets[p] = tf(p, "D")
roles["D"] = (d, "D")

files = {}
def dump(signed, key):
    md = Metadata(signed)
    md.sign(K[key])
    return md.to_bytes(JSONSerializer())  # pretty: the file is not the signed form
for name, (t, key) in roles.items():
    files[name] = dump(t, key)
root = Root(expires=EXP, consistent_snapshot=True)
for r in ["root", "timestamp", "snapshot", "targets"]:
    root.add_key(K[r].public_key, r)
files["root"] = dump(root, "root")
snap = Snapshot(expires=EXP, meta={f"{n}.json": MetaFile.from_data(1, files[n], ["sha256"]) for n in roles})
files["snapshot"] = dump(snap, "snapshot")
files["timestamp"] = dump(Timestamp(expires=EXP, snapshot_meta=MetaFile.from_data(1, files["snapshot"], ["sha256"])), "timestamp")

class MemFetcher(FetcherInterface):
    def __init__(self):
        self.log = []
    def _fetch(self, url):
        name = url.rsplit("/", 1)[-1]
        if name == "timestamp.json":
            role = "timestamp"
        else:
            v, role = name.split(".", 1)[0], name.split(".", 1)[1][:-5]
            if v != "1":
                raise DownloadHTTPError("not found", 404)
        self.log.append(role)
        return iter([files[role]])

lookups = []
for path in ["top.txt", "a/one", "a/x1", "a/ddd", "b/two", "b/deep", "b/never", "shared/s", "c/file", "d/four", "zzz", "q/zzz"]:
    with tempfile.TemporaryDirectory() as tmp:
        f = MemFetcher()
        u = Updater(tmp, "http://repo/meta/", fetcher=f, bootstrap=files["root"])
        u.refresh()
        f.log.clear()
        info = u.get_targetinfo(path)
        lookups.append({"path": path, "role": info.custom["role"] if info else None,
                        "length": info.length if info else None, "loaded": list(f.log)})

with open("search_repo.json", "w") as fp:
    json.dump({"files": {k: v.hex() for k, v in files.items()}, "lookups": lookups,
               "reference_time": int(dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc).timestamp())}, fp, indent=0)
for l in lookups:
    print(l["path"], l["role"], l["loaded"])
