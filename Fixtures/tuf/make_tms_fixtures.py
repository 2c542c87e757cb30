#!/usr/bin/env python3
"""Writes tms_cases.json: scenarios replayed through python-tuf 7.0.1's TrustedMetadataSet,
with python-tuf's decision (and the trusted versions afterwards) for every step.
Tests/TUFTests (TUFInteropTests) replays each scenario through CourierTUF.TrustedMetadataSet and requires the
same decisions. Run: python3 make_tms_fixtures.py  (needs `pip install tuf==7.0.1`).

File: {"blobs": [hex, …], "cases": [case, …]}; each case: {"name", "reference_time", "root": blob
index, "root_result", "steps": [{"op", "data": blob index, "role", "delegator", "trusted",
"result": "ok" | exception class name, "after": {role: version|null}}]}. Blobs are shared
between steps so that the many repeats of one file are stored once.
"""
import copy, json, datetime as dt
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (Metadata, Root, Timestamp, Snapshot, Targets, MetaFile, TargetFile,
                              DelegatedRole, Delegations, SuccinctRoles, Key)
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet
from tuf.ngclient.config import EnvelopeType

REF = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
FUTURE = dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)
PAST = dt.datetime(2029, 1, 1, tzinfo=dt.timezone.utc)

# Keys of every type CryptoSigner makes, so verification of each is exercised end to end.
K = {
    "root1": CryptoSigner.generate_ed25519(),
    "root2": CryptoSigner.generate_ed25519(),
    "root3": CryptoSigner.generate_ecdsa(),
    "ts": CryptoSigner.generate_ecdsa(),
    "ts2": CryptoSigner.generate_ed25519(),
    "snap": CryptoSigner.generate_rsa(size=2048),
    "targets": CryptoSigner.generate_ed25519(),
    "deleg": CryptoSigner.generate_rsa(scheme="rsa-pkcs1v15-sha256", size=2048),
    "bins": CryptoSigner.generate_ed25519(),
}

def dump(md, pretty=False):
    return md.to_bytes(JSONSerializer(compact=not pretty))

def signed(payload, *keys):
    md = Metadata(payload)
    for k in keys:
        md.sign(K[k], append=True)
    return md

def make_root(version=1, root_keys=("root1",), threshold=1, ts_key="ts", expires=FUTURE):
    r = Root(version=version, expires=expires, consistent_snapshot=True)
    for k in root_keys:
        r.add_key(K[k].public_key, "root")
    r.roles["root"].threshold = threshold
    r.add_key(K[ts_key].public_key, "timestamp")
    r.add_key(K["snap"].public_key, "snapshot")
    r.add_key(K["targets"].public_key, "targets")
    return r

def ts(version=1, snap_version=1, snap_bytes=None, expires=FUTURE, key="ts", hashes=True):
    mf = MetaFile.from_data(snap_version, snap_bytes, ["sha256"]) if (snap_bytes and hashes) else MetaFile(snap_version)
    return dump(signed(Timestamp(version=version, expires=expires, snapshot_meta=mf), key))

def snap(version=1, meta=None, expires=FUTURE):
    meta = meta if meta is not None else {"targets.json": MetaFile(1)}
    return dump(signed(Snapshot(version=version, expires=expires, meta=meta), "snap"))

def targets(version=1, expires=FUTURE, delegations=None, tfiles=None, key="targets"):
    t = Targets(version=version, expires=expires, delegations=delegations)
    for p, data in (tfiles or {}).items():
        t.targets[p] = TargetFile.from_data(p, data, ["sha256"])
    return dump(signed(t, key))

def deleg_roles():
    d = Delegations(keys={K["deleg"].public_key.keyid: K["deleg"].public_key}, roles={})
    d.roles["role1"] = DelegatedRole("role1", [K["deleg"].public_key.keyid], 1, False, paths=["files/*"])
    return d

ROOT1 = dump(signed(make_root(), "root1"))

cases = []
blobs, blob_index = [], {}
def blob(b):
    if b not in blob_index:
        blob_index[b] = len(blobs)
        blobs.append(b.hex())
    return blob_index[b]

def case(name, steps, root=ROOT1):
    try:
        tms = TrustedMetadataSet(root, EnvelopeType.METADATA)
    except Exception as e:  # noqa: BLE001
        cases.append({"name": name, "reference_time": int(REF.timestamp()), "root": blob(root),
                      "root_result": type(e).__name__, "steps": []})
        return
    tms.reference_time = REF
    out = []
    for st in steps:
        op, data = st[0], st[1]
        kw = st[2] if len(st) > 2 else {}
        try:
            if op == "root": tms.update_root(data)
            elif op == "timestamp": tms.update_timestamp(data)
            elif op == "snapshot": tms.update_snapshot(data, trusted=kw.get("trusted", False))
            elif op == "targets": tms.update_targets(data)
            elif op == "delegated": tms.update_delegated_targets(data, kw["role"], kw["delegator"])
            res = "ok"
        except Exception as e:  # noqa: BLE001 - the class name is the decision recorded
            res = type(e).__name__
        after = {r: (int(tms.get(r).version) if tms.get(r) is not None else None)
                 for r in ["root", "timestamp", "snapshot", "targets", "role1"]}
        out.append({"op": op, "data": blob(data), "role": kw.get("role", ""), "delegator": kw.get("delegator", ""),
                    "trusted": kw.get("trusted", False), "result": res, "after": after})
    cases.append({"name": name, "reference_time": int(REF.timestamp()), "root": blob(root),
                  "root_result": "ok", "steps": out})

S1 = snap()
T1 = targets()
TS1 = ts(1, 1, S1)

# --- root rotation
R2 = make_root(2, root_keys=("root2",))
case("root rotation signed by old and new", [("root", dump(signed(R2, "root1", "root2"))), ("timestamp", TS1)])
case("root rotation signed only by new", [("root", dump(signed(R2, "root2")))])
case("root rotation signed only by old", [("root", dump(signed(R2, "root1")))])
case("root skips a version", [("root", dump(signed(make_root(3, root_keys=("root2",)), "root1", "root2")))])
case("root same version", [("root", dump(signed(make_root(1), "root1")))])
R2t = make_root(2, root_keys=("root1", "root2", "root3"), threshold=2)
R3t = make_root(3, root_keys=("root1", "root2", "root3"), threshold=2)
case("root threshold raised then met", [("root", dump(signed(R2t, "root1", "root3"))),
                                        ("root", dump(signed(R3t, "root2", "root3")))])
case("root threshold raised then not met", [("root", dump(signed(R2t, "root1", "root3"))),
                                            ("root", dump(signed(R3t, "root2")))])
case("root after timestamp", [("timestamp", TS1), ("root", dump(signed(R2, "root1", "root2")))])
case("expired intermediate root is fine, expired final is not",
     [("root", dump(signed(make_root(2, expires=PAST), "root1"))), ("timestamp", TS1)])
case("expired trusted root", [("timestamp", TS1)], root=dump(signed(make_root(expires=PAST), "root1")))
case("root rotates timestamp key", [("root", dump(signed(make_root(2, ts_key="ts2"), "root1"))),
                                    ("timestamp", TS1), ("timestamp", ts(2, 1, S1, key="ts2"))])

# --- timestamp
case("timestamp rollback", [("timestamp", ts(2, 1, S1)), ("timestamp", TS1)])
case("timestamp equal version", [("timestamp", TS1), ("timestamp", TS1)])
case("timestamp snapshot version rollback", [("timestamp", ts(1, 2)), ("timestamp", ts(2, 1))])
case("timestamp expired is stored", [("timestamp", ts(1, 1, S1, expires=PAST)), ("timestamp", ts(2, 1, S1)), ("snapshot", S1)])
case("timestamp expired blocks snapshot", [("timestamp", ts(1, 1, S1, expires=PAST)), ("snapshot", S1)])
case("timestamp wrong key", [("timestamp", ts(key="ts2"))])
case("timestamp given snapshot bytes", [("timestamp", S1)])

# --- snapshot
S1b = snap(meta={"targets.json": MetaFile(1), "extra.json": MetaFile(1)})
case("snapshot ok", [("timestamp", TS1), ("snapshot", S1), ("targets", T1)])
case("snapshot hash mismatch", [("timestamp", ts(1, 1, S1b)), ("snapshot", S1)])
case("snapshot hash mismatch but trusted", [("timestamp", ts(1, 1, S1b)), ("snapshot", S1, {"trusted": True})])
lenonly = dump(signed(Timestamp(version=1, expires=FUTURE, snapshot_meta=MetaFile(1, length=len(S1) + 1)), "ts"))
case("snapshot length mismatch", [("timestamp", lenonly), ("snapshot", S1)])
case("snapshot before timestamp", [("snapshot", S1)])
case("snapshot version differs from timestamp meta", [("timestamp", ts(1, 2)), ("snapshot", S1), ("targets", T1)])
case("snapshot expired", [("timestamp", ts(1, 1)), ("snapshot", snap(expires=PAST)), ("targets", T1)])
S2missing = snap(2, meta={"extra.json": MetaFile(1)})
case("snapshot drops a role", [("timestamp", ts(1, 1)), ("snapshot", S1b, {"trusted": True}),
                               ("snapshot", S2missing)])
S2lower = snap(2, meta={"targets.json": MetaFile(1)})
case("snapshot lowers a role version", [("timestamp", ts(1, 1)), ("snapshot", snap(1, meta={"targets.json": MetaFile(3)})),
                                        ("snapshot", S2lower)])
case("snapshot after targets", [("timestamp", TS1), ("snapshot", S1), ("targets", T1), ("snapshot", S1)])
case("snapshot wrong key", [("timestamp", ts(1, 1)), ("snapshot", dump(signed(Snapshot(expires=FUTURE), "ts")))])

# --- targets
T2 = targets(2)
case("targets version differs from snapshot meta (mix and match)", [("timestamp", TS1), ("snapshot", S1), ("targets", T2)])
S_thash = snap(meta={"targets.json": MetaFile.from_data(1, T2, ["sha256"])})
case("targets hash mismatch", [("timestamp", ts(1, 1, S_thash)), ("snapshot", S_thash), ("targets", T1)])
S_tlen = snap(meta={"targets.json": MetaFile(1, length=len(T1) - 1)})
case("targets length mismatch", [("timestamp", ts(1, 1, S_tlen)), ("snapshot", S_tlen), ("targets", T1)])
case("targets expired", [("timestamp", TS1), ("snapshot", S1), ("targets", targets(expires=PAST))])
S_none = snap(meta={"other.json": MetaFile(1)})
case("targets not in snapshot", [("timestamp", ts(1, 1, S_none)), ("snapshot", S_none), ("targets", T1)])
case("targets wrong key", [("timestamp", TS1), ("snapshot", S1), ("targets", targets(key="deleg"))])
case("targets before snapshot", [("timestamp", TS1), ("targets", T1)])

# --- delegated
TD = targets(delegations=deleg_roles())
R1 = targets(1, key="deleg", tfiles={"files/a.txt": b"hello"})
S_d = snap(meta={"targets.json": MetaFile(1), "role1.json": MetaFile(1)})
base = [("timestamp", ts(1, 1, S_d)), ("snapshot", S_d), ("targets", TD)]
case("delegated ok", base + [("delegated", R1, {"role": "role1", "delegator": "targets"})])
case("delegated wrong key", base + [("delegated", targets(1, key="targets"), {"role": "role1", "delegator": "targets"})])
case("delegated not delegated", base + [("delegated", R1, {"role": "role1", "delegator": "role1"})])
case("delegated delegator missing", base + [("delegated", R1, {"role": "role2", "delegator": "role9"})])
case("delegated not in snapshot", base + [("delegated", R1, {"role": "role2", "delegator": "targets"})])
case("delegated version mismatch", base + [("delegated", targets(2, key="deleg"), {"role": "role1", "delegator": "targets"})])
case("delegated expired", base + [("delegated", targets(1, key="deleg", expires=PAST), {"role": "role1", "delegator": "targets"})])
# succinct bins
SB = Delegations(keys={K["bins"].public_key.keyid: K["bins"].public_key}, roles=None,
                 succinct_roles=SuccinctRoles([K["bins"].public_key.keyid], 1, 4, "bin"))
TB = targets(delegations=SB)
S_b = snap(meta={"targets.json": MetaFile(1), "bin-3.json": MetaFile(1), "bin-g.json": MetaFile(1)})
bbase = [("timestamp", ts(1, 1, S_b)), ("snapshot", S_b), ("targets", TB)]
case("succinct bin ok", bbase + [("delegated", targets(1, key="bins"), {"role": "bin-3", "delegator": "targets"})])
case("succinct bin not a bin", bbase + [("delegated", targets(1, key="bins"), {"role": "bin-g", "delegator": "targets"})])

# --- format
def raw_edit(md_bytes, edit):
    d = json.loads(md_bytes)
    edit(d)
    return json.dumps(d).encode()
def resign(d_signed, key):
    md = Metadata.from_dict({"signed": d_signed, "signatures": []})
    md.sign(K[key])
    return md
def unknown_fields(d):
    d["signed"]["x-extra"] = {"b": [1, "\u00e9\"\\"], "a": None, "\u00e9": True, "Z": -3}
t_unknown = json.loads(dump(signed(Timestamp(version=1, expires=FUTURE, snapshot_meta=MetaFile(1)), "ts")))
unknown_fields(t_unknown)
md = Metadata.from_dict(copy.deepcopy(t_unknown)); md.signatures.clear(); md.sign(K["ts"])
case("unknown fields are signed and kept", [("timestamp", dump(md, pretty=True))])
case("unknown field added after signing", [("timestamp", raw_edit(TS1, unknown_fields))])
case("pretty printed and reordered file", [("timestamp", json.dumps(json.loads(TS1), indent=3, sort_keys=False).encode())])
case("spec_version 2", [("timestamp", raw_edit(TS1, lambda d: d["signed"].update(spec_version="2.0.0")))])
case("version zero", [("timestamp", raw_edit(TS1, lambda d: d["signed"].update(version=0)))])
case("duplicate signature keyid", [("timestamp", raw_edit(TS1, lambda d: d["signatures"].append(d["signatures"][0])))])
case("unsupported key type in root",
     [("timestamp", TS1)],
     root=raw_edit(ROOT1, lambda d: d["signed"]["keys"].update({"ab": {"keytype": "weird", "scheme": "x", "keyval": {"public": "00"}}})))
th = json.loads(TS1)
th["signed"]["meta"]["snapshot.json"]["hashes"] = {"sha256": MetaFile.from_data(1, S1, ["sha256"]).hashes["sha256"].upper()}
md = Metadata.from_dict(th); md.signatures.clear(); md.sign(K["ts"])
case("uppercase hash in meta refused", [("timestamp", dump(md)), ("snapshot", S1)])
case("signature over wrong bytes", [("timestamp", raw_edit(TS1, lambda d: d["signed"].update(version=5)))])

# --- what python-tuf signs is canonical(to_dict()), not the file's "signed" as is
case("lenient expires added after signing", [("timestamp", raw_edit(TS1, lambda d: d["signed"].update(expires="2031-1-1T0:0:0Z")))])
case("null length added after signing", [("timestamp", raw_edit(TS1, lambda d: d["signed"]["meta"]["snapshot.json"].update(length=None)))])
case("extra timestamp meta added after signing", [("timestamp", raw_edit(TS1, lambda d: d["signed"]["meta"].update({"x.json": {"version": 1}})))])
tx = json.loads(TS1); tx["signed"]["meta"]["x.json"] = {"version": 1}
mdx = Metadata.from_dict(copy.deepcopy(tx)); mdx.signatures.clear()
sig = K["ts"].sign(json.dumps(tx["signed"], sort_keys=True, separators=(",", ":")).encode())
tx["signatures"] = [{"keyid": sig.keyid, "sig": sig.signature}]
case("extra timestamp meta signed as is", [("timestamp", json.dumps(tx).encode())])
case("null consistent_snapshot added after signing", [("timestamp", TS1)],
     root=raw_edit(ROOT1, lambda d: d["signed"].update(consistent_snapshot=None)))
case("delegated by a role without delegations", base + [("delegated", R1, {"role": "role1", "delegator": "targets"}),
     ("delegated", R1, {"role": "role2", "delegator": "role1"})])

# --- model validation: files edited and re-signed as is (bypassing python-tuf's writer), so
# that only python-tuf's parsing decides
from securesystemslib.formats import encode_canonical
def resigned(md_bytes, edit, key):
    d = json.loads(md_bytes)
    edit(d["signed"])
    sig = K[key].sign(encode_canonical(d["signed"]).encode())
    d["signatures"] = [{"keyid": sig.keyid, "sig": sig.signature}]
    return json.dumps(d).encode()
def ts_edit(name, edit):
    case(name, [("timestamp", resigned(TS1, edit, "ts"))])
def root_edit(name, edit):
    case(name, [("timestamp", TS1)], root=resigned(ROOT1, edit, "root1"))
def targets_edit(name, edit, t=TD):
    s = snap(meta={"targets.json": MetaFile(1)})
    case(name, [("timestamp", ts(1, 1, s)), ("snapshot", s), ("targets", resigned(t, edit, "targets"))])
ts_edit("version true", lambda d: d.update(version=True))
ts_edit("version string", lambda d: d.update(version="1"))
ts_edit("spec_version 1.0", lambda d: d.update(spec_version="1.0"))
ts_edit("spec_version 1", lambda d: d.update(spec_version="1"))
ts_edit("spec_version 1.0.x", lambda d: d.update(spec_version="1.0.x"))
ts_edit("meta length negative", lambda d: d["meta"]["snapshot.json"].update(length=-1))
ts_edit("meta hashes empty", lambda d: d["meta"]["snapshot.json"].update(hashes={}))
ts_edit("meta hash value not a string", lambda d: d["meta"]["snapshot.json"].update(hashes={"sha256": 1}))
ts_edit("meta version zero", lambda d: d["meta"]["snapshot.json"].update(version=0))
ts_edit("expires with offset", lambda d: d.update(expires="2031-01-01T00:00:00+00:00"))
ts_edit("expires with fraction", lambda d: d.update(expires="2031-01-01T00:00:00.5Z"))
ts_edit("expires one-digit fields", lambda d: d.update(expires="2031-1-1T0:0:0Z"))
ts_edit("float in unknown field", lambda d: d.update(x=1.5) if False else d.update(x=[1, 2]))
root_edit("root threshold zero", lambda d: d["roles"]["timestamp"].update(threshold=0))
root_edit("root nonunique keyids", lambda d: d["roles"]["timestamp"].update(keyids=d["roles"]["timestamp"]["keyids"] * 2))
root_edit("root extra role", lambda d: d["roles"].update(mirror={"keyids": [], "threshold": 1}))
root_edit("root missing role", lambda d: d["roles"].pop("targets"))
root_edit("root consistent_snapshot string", lambda d: d.update(consistent_snapshot="yes"))
root_edit("root legacy ecdsa keytype", lambda d: [k.update(keytype="ecdsa-sha2-nistp256") for k in d["keys"].values() if k["keytype"] == "ecdsa"])
root_edit("root key without public", lambda d: [k.update(keyval={"private": "x"}) for k in d["keys"].values() if k["keytype"] == "ecdsa"])
targets_edit("delegations paths and prefixes", lambda d: d["delegations"]["roles"][0].update(path_hash_prefixes=["ab"]))
targets_edit("delegations neither paths nor prefixes", lambda d: d["delegations"]["roles"][0].pop("paths"))
targets_edit("delegations null paths with prefixes", lambda d: d["delegations"]["roles"][0].update(paths=None, path_hash_prefixes=["ab"]))
targets_edit("delegated role named snapshot", lambda d: d["delegations"]["roles"][0].update(name="snapshot"))
targets_edit("delegated role name empty", lambda d: d["delegations"]["roles"][0].update(name=""))
targets_edit("duplicate delegated role", lambda d: d["delegations"]["roles"].append(d["delegations"]["roles"][0]))
targets_edit("delegations roles and succinct", lambda d: d["delegations"].update(succinct_roles={"keyids": [], "threshold": 1, "bit_length": 2, "name_prefix": "b"}))
targets_edit("succinct bit_length 33", lambda d: (d["delegations"].pop("roles"), d["delegations"].update(succinct_roles={"keyids": [], "threshold": 1, "bit_length": 33, "name_prefix": "b"})))
targets_edit("delegations null", lambda d: d.update(delegations=None))
targets_edit("terminating missing", lambda d: d["delegations"]["roles"][0].pop("terminating"))
targets_edit("target length negative", lambda d: d["targets"].update({"f": {"length": -1, "hashes": {"sha256": "00"}}}))
targets_edit("target without hashes", lambda d: d["targets"].update({"f": {"length": 1}}))
targets_edit("target with custom unicode", lambda d: d["targets"].update({"f\u00e9/\u212a": {"length": 1, "hashes": {"sha256": "00"}, "custom": {"\u0000": "\u202e"}}}))
case("signatures not a list", [("timestamp", raw_edit(TS1, lambda d: d.update(signatures={})))])
case("signature without sig", [("timestamp", raw_edit(TS1, lambda d: d["signatures"][0].pop("sig")))])
case("signature not hex", [("timestamp", raw_edit(TS1, lambda d: d["signatures"][0].update(sig="zz")))])
case("signature with unknown field", [("timestamp", raw_edit(TS1, lambda d: d["signatures"][0].update(x=1)))])
case("float in signed", [("timestamp", raw_edit(TS1, lambda d: d["signed"].update(x=1.5)))])

with open("tms_cases.json", "w") as f:
    json.dump({"blobs": blobs, "cases": cases}, f, indent=0)
print(len(cases), "cases")
