"""TUF interop: keys and thresholds. Root rotation over several versions (threshold changes,
rotations that must fail), rotation of the timestamp, snapshot and targets keys, thresholds
not met. Each step is compared between the two clients (conftest.Pair)."""
import json

import pytest

TOP = ("root", "timestamp", "snapshot", "targets")


def test_root_rotation_over_several_versions(tuf):
    repo, pair = tuf()
    pair.init()
    assert pair.refresh() == 0
    repo.rotate_keys("root")                 # v2: one new key
    repo.publish_root()
    assert pair.refresh() == 0
    assert pair.versions()["root"] == 2
    repo.rotate_keys("root", count=3)        # v3: three new keys, threshold 2
    repo.set_threshold("root", 2)
    repo.publish_root()
    repo.rotate_keys("root", count=2)        # v4: two new keys, threshold 2 (v3 signs with its 3)
    repo.publish_root()
    repo.set_threshold("root", 1)            # v5: same keys, threshold back to 1
    repo.publish_root()
    assert pair.refresh() == 0               # 2 -> 5 in one refresh
    assert pair.versions()["root"] == 5
    assert pair.ref.metadata()["root.json"] == repo.history["root"][5]
    # v6 signed by one of v5's two keys (threshold 1): enough.
    repo.publish_root(signers=repo.signers["root"][:1])
    assert pair.refresh() == 0
    assert pair.versions()["root"] == 6


@pytest.mark.parametrize("signed_by", ["new-keys-only", "old-keys-only", "no-keys"])
def test_root_rotation_that_must_fail(tuf, signed_by):
    """Root v2 rotates to new keys; v2 must carry a threshold of v1's keys AND of its own."""
    repo, pair = tuf()
    pair.init()
    assert pair.refresh() == 0
    old = list(repo.signers["root"])
    repo.rotate_keys("root")
    signers = {"new-keys-only": repo.signers["root"], "old-keys-only": old, "no-keys": []}[signed_by]
    repo.publish_root(signers=signers)
    repo.update_timestamp()
    assert pair.refresh() == 1
    assert pair.versions() == {"root": 1, "timestamp": 1, "snapshot": 1, "targets": 1}


def test_root_threshold_raised_then_met_by_too_few(tuf):
    """v2 raises the root threshold to 2; v3 carries only one v2 signature: refused, v2 stays."""
    repo, pair = tuf()
    pair.init()
    repo.add_key("root")
    repo.set_threshold("root", 2)
    repo.publish_root()
    assert pair.refresh() == 0
    assert pair.versions()["root"] == 2
    repo.publish_root(signers=repo.signers["root"][:1])
    assert pair.refresh() == 1
    assert pair.versions()["root"] == 2


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets"])
def test_top_level_key_rotation(tuf, role):
    """Root v2 gives `role` new keys: metadata signed by them is accepted, by the old ones refused."""
    repo, pair = tuf()
    pair.init()
    assert pair.refresh() == 0
    old = list(repo.signers[role])
    repo.rotate_keys(role)
    repo.publish_root()
    repo.bump(role, signers=old)             # still signed with the revoked key
    assert pair.refresh() == 1
    v = pair.versions()
    assert v["root"] == 2 and v[role] == 1, v
    repo.bump(role)                          # now with the new key
    assert pair.refresh() == 0
    v = pair.versions()
    assert v["root"] == 2 and v[role] == 3, v


@pytest.mark.parametrize("role", TOP)
def test_threshold_not_met(tuf, role):
    """Root v2 sets the threshold of `role` to 2 of 2 keys; a later version carries one signature."""
    repo, pair = tuf()
    pair.init()
    repo.add_key(role)
    repo.set_threshold(role, 2)
    repo.publish_root()
    if role != "root":
        repo.bump(role)                      # re-signed by both keys
    assert pair.refresh() == 0
    before = pair.versions()
    assert before["root"] == 2
    repo.bump(role, signers=repo.signers[role][:1])
    assert pair.refresh() == 1
    assert pair.versions()[role] == before[role]
    if role == "root":
        repo.publish_root(bump=False)        # the same version again, properly signed
        after = before[role] + 1
    else:
        repo.bump(role)
        after = before[role] + 2
    assert pair.refresh() == 0
    assert pair.versions()[role] == after


def test_duplicate_signatures_count_once(tuf):
    """Threshold 2 met only by the same key signing twice: refused."""
    repo, pair = tuf()
    pair.init()
    repo.add_key("timestamp")
    repo.set_threshold("timestamp", 2)
    repo.publish_root()
    s = repo.signers["timestamp"][0]
    repo.timestamp.version += 1
    repo.timestamp.snapshot_meta.version = repo.snapshot.version
    md = repo.md["timestamp"]
    md.signatures.clear()
    md.sign(s, append=True)
    data = md.to_dict()
    sig = data["signatures"][0]
    data["signatures"].append(dict(sig))
    repo.served["metadata/timestamp.json"] = json.dumps(data).encode()
    assert pair.refresh() == 1
    assert "timestamp" not in pair.versions()


def test_fast_forward_recovery_after_timestamp_key_rotation(tuf):
    """Spec 5.3.11: once root rotates the timestamp keys, the old timestamp (v3 here) is no longer
    trusted, so the repository may restart timestamp versions at 1 with the new key."""
    repo, pair = tuf()
    repo.bump_targets()
    repo.update_timestamp()
    pair.init()
    assert pair.refresh() == 0
    assert pair.versions()["timestamp"] == 3
    repo.rotate_keys("timestamp")
    repo.publish_root()
    repo.timestamp.version = 1
    repo.update_timestamp(bump=False)
    assert pair.refresh() == 0
    assert pair.versions() == {"root": 2, "timestamp": 1, "snapshot": 2, "targets": 2}
