"""TUF interop: the attacks the specification names. Freeze (expired metadata, the client's clock
moved with faketime), rollback of each role, mix and match, tampered artifacts (hash, length),
endless data. Each step is compared between the two clients (conftest.Pair)."""
import pytest

from tufrepo import days

LATER = 400      # days the clock moves in the expiry tests
SOON = 100       # expiry of the metadata under test: valid now, expired at LATER


def test_expired_root(tuf):
    """A newer root is trusted even if expired (spec 5.3.10), then the update stops: nothing else moves."""
    repo, pair = tuf()
    pair.init()
    assert pair.refresh() == 0
    repo.root.expires = days(SOON)
    repo.publish_root()
    repo.bump_targets()
    assert pair.refresh(days=LATER) == 1
    assert pair.versions() == {"root": 2, "timestamp": 1, "snapshot": 1, "targets": 1}
    assert pair.refresh() == 0               # back to today: root v2 is valid again
    assert pair.versions() == {"root": 2, "timestamp": 2, "snapshot": 2, "targets": 2}


def test_expired_timestamp(tuf):
    repo, pair = tuf()
    repo.timestamp.expires = days(SOON)
    repo.update_timestamp()
    pair.init()
    assert pair.refresh() == 0
    repo.bump_targets()                      # timestamp v3, also expiring at SOON
    assert pair.refresh(days=LATER) == 1
    v = pair.versions()
    assert v["timestamp"] == 2 and v["snapshot"] == 1 and v["targets"] == 1, v   # frozen: nothing new trusted
    assert pair.download("x", days=LATER) == 1


def test_expired_local_timestamp_replaced_by_valid_one(tuf):
    """An expired timestamp held locally does not stop an update to a valid new one."""
    repo, pair = tuf()
    repo.timestamp.expires = days(SOON)
    repo.update_timestamp()
    pair.init()
    assert pair.refresh() == 0
    repo.timestamp.expires = days(3650)
    repo.bump_targets()
    assert pair.refresh(days=LATER) == 0
    assert pair.versions() == {"root": 1, "timestamp": 3, "snapshot": 2, "targets": 2}


@pytest.mark.parametrize("role", ["snapshot", "targets"])
def test_expired_snapshot_or_targets(tuf, role):
    repo, pair = tuf()
    repo.add_target("targets", "t", b"t")
    repo.bump_targets()
    pair.init()
    assert pair.refresh() == 0
    repo.role(role).expires = days(SOON)
    repo.bump(role)
    assert pair.refresh() == 0               # valid today
    assert pair.refresh(days=LATER) == 1
    assert pair.download("t", days=LATER) == 1
    assert pair.artifacts() == []
    assert pair.download("t") == 0           # today it is fine
    assert pair.artifacts() == [b"t"]


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets"])
def test_expired_new_version_not_trusted(tuf, role):
    """A new version that is already expired is not stored; what it came after is (spec 5.4-5.6)."""
    repo, pair = tuf()
    pair.init()
    assert pair.refresh() == 0
    repo.role(role).expires = days(SOON)
    repo.bump(role)
    assert pair.refresh(days=LATER) == 1
    expected = {"root": 1, "timestamp": 1, "snapshot": 1, "targets": 1}
    expected.update({"snapshot": {"timestamp": 2}, "targets": {"timestamp": 2, "snapshot": 2}}.get(role, {}))
    assert pair.versions() == expected


def test_rollback_root(tuf):
    """N.root.json must hold version N: an older root served under the next name is refused."""
    repo, pair = tuf()
    pair.init()
    repo.publish_root()
    assert pair.refresh() == 0
    repo.served["metadata/3.root.json"] = repo.history["root"][2]
    assert pair.refresh() == 1
    assert pair.versions()["root"] == 2


def test_rollback_timestamp(tuf):
    repo, pair = tuf()
    pair.init()
    old = repo.served["metadata/timestamp.json"]
    repo.bump_targets()
    assert pair.refresh() == 0
    repo.served["metadata/timestamp.json"] = old   # v1 again, validly signed
    assert pair.refresh() == 1
    assert pair.versions()["timestamp"] == 2


def test_rollback_snapshot(tuf):
    """A new timestamp that points at an older snapshot version is refused."""
    repo, pair = tuf()
    pair.init()
    repo.bump_targets()
    assert pair.refresh() == 0
    repo.snapshot.version = 1
    repo.publish("snapshot", bump=False)
    repo.update_timestamp()                  # timestamp v3 -> snapshot v1
    assert pair.refresh() == 1
    assert pair.versions() == {"root": 1, "timestamp": 2, "snapshot": 2, "targets": 2}


def test_rollback_targets(tuf):
    """A new snapshot that lists an older targets version is refused."""
    repo, pair = tuf()
    pair.init()
    repo.bump_targets()
    assert pair.refresh() == 0
    repo.targets.version = 1
    repo.publish("targets", bump=False)
    repo.update_snapshot()                   # snapshot v3 -> targets v1
    assert pair.refresh() == 1
    v = pair.versions()
    assert v["snapshot"] == 2 and v["targets"] == 2, v


def test_mix_and_match_targets(tuf):
    """Snapshot says targets v2; the mirror serves targets v1 (validly signed): refused."""
    repo, pair = tuf()
    repo.add_target("targets", "t", b"new")
    repo.bump_targets()
    repo.served["metadata/targets.json"] = repo.history["targets"][1]
    pair.init()
    assert pair.refresh() == 1
    assert "targets" not in pair.versions()
    assert pair.download("t") == 1


def test_mix_and_match_snapshot(tuf):
    """Timestamp says snapshot v3; the mirror serves snapshot v2: refused."""
    repo, pair = tuf()
    repo.bump_targets()
    repo.bump_targets()
    repo.served["metadata/snapshot.json"] = repo.history["snapshot"][2]
    pair.init()
    assert pair.refresh() == 1
    assert "snapshot" not in pair.versions() and "targets" not in pair.versions()


@pytest.mark.parametrize("role", ["snapshot", "targets"])
def test_metadata_hash_mismatch(tuf, role):
    """With hashes in timestamp/snapshot, a same-version file with other bytes is refused."""
    repo, pair = tuf(meta_hashes=True)
    repo.bump_targets()
    repo.role(role).expires = days(99)      # same version, different (validly signed) content
    repo.served[f"metadata/{role}.json"] = repo.sign(role)
    pair.init()
    assert pair.refresh() == 1
    assert role not in pair.versions()


@pytest.mark.parametrize("served", ["same-length-other-bytes", "one-byte-longer", "one-byte-shorter"])
def test_artifact_hash_or_length_mismatch(tuf, served):
    repo, pair = tuf()
    data = b"0123456789" * 100
    repo.add_target("targets", "file.bin", data)
    repo.bump_targets()
    bad = {"same-length-other-bytes": data[:-1] + b"X", "one-byte-longer": data + b"!",
           "one-byte-shorter": data[:-1]}[served]
    repo.serve_artifact("file.bin", bad)
    pair.init()
    assert pair.download("file.bin") == 1
    assert pair.artifacts() == []
    repo.serve_artifact("file.bin", data)   # the mirror is repaired
    assert pair.download("file.bin") == 0
    assert pair.artifacts() == [data]


def test_endless_artifact(tuf):
    """The artifact's body goes on past the length in targets metadata: refused, nothing stored."""
    repo, pair = tuf()
    repo.add_target("targets", "file.bin", b"x" * 1000)
    repo.bump_targets()
    repo.endless.add("targets/file.bin")
    pair.init()
    assert pair.download("file.bin") == 1
    assert pair.artifacts() == []


@pytest.mark.parametrize("path", ["metadata/2.root.json", "metadata/timestamp.json"])
def test_endless_top_level_metadata(tuf, path):
    """No length is known for root and timestamp: a client must stop at its own maximum
    (python-tuf: 512000 bytes for root, 16384 for timestamp)."""
    repo, pair = tuf()
    repo.publish_root()
    pair.init()
    repo.endless.add(path)
    assert pair.refresh() == 1
    assert pair.versions()["root"] == (1 if "root" in path else 2)
    assert "timestamp" not in pair.versions()


@pytest.mark.parametrize("role", ["snapshot", "targets"])
def test_endless_metadata_with_known_length(tuf, role):
    repo, pair = tuf(meta_hashes=True)
    repo.bump_targets()
    repo.endless.add(f"metadata/{role}.json")
    pair.init()
    assert pair.refresh() == 1
    assert role not in pair.versions()
