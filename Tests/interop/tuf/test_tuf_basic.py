"""TUF interop: the ordinary paths. Refresh, download, caching, the CLI's option order and
multiple targets, consistent snapshots and every key type. See conftest.py for how each step
compares the two clients; each test also asserts the outcome it expects on its own."""
import os

import pytest

from tufrepo import KEY_TYPES

TOP = {"root": 1, "timestamp": 1, "snapshot": 1, "targets": 1}


def test_basic_refresh_and_download(tuf):
    repo, pair = tuf()
    repo.add_target("targets", "file.txt", b"hello, fleet\n")
    repo.bump_targets()
    pair.init()
    assert pair.versions() == {"root": 1}
    assert pair.refresh() == 0
    assert pair.versions() == {"root": 1, "timestamp": 2, "snapshot": 2, "targets": 2}
    # The trusted files hold the exact bytes the repository served.
    assert pair.ref.metadata()["timestamp.json"] == repo.served["metadata/timestamp.json"]
    assert pair.download("file.txt") == 0
    assert pair.artifacts() == [b"hello, fleet\n"]
    # A new version of the metadata and of the artifact: downloaded again, in the same place.
    repo.add_target("targets", "file.txt", b"hello again\n")
    repo.bump_targets()
    assert pair.download("file.txt") == 0
    assert pair.artifacts() == [b"hello again\n"]
    assert pair.versions()["targets"] == 3


def test_refresh_twice_without_change(tuf):
    repo, pair = tuf()
    pair.init()
    assert pair.refresh() == 0
    assert pair.refresh() == 0
    assert pair.versions() == TOP


def test_unknown_target_fails(tuf):
    repo, pair = tuf()
    pair.init()
    assert pair.download("no-such-file") == 1
    assert pair.artifacts() == []
    assert pair.versions() == TOP  # the metadata was still refreshed


def test_several_targets_in_order_stop_at_first_failure(tuf):
    repo, pair = tuf()
    for n in ("a", "b", "c"):
        repo.add_target("targets", n, n.encode() * 10)
    repo.bump_targets()
    pair.init()
    assert pair.download("a", "b", "c") == 0
    assert pair.artifacts() == [b"a" * 10, b"b" * 10, b"c" * 10]
    repo.add_target("targets", "d", b"d" * 10)
    repo.add_target("targets", "e", b"e" * 10)
    repo.bump_targets()
    repo.serve_artifact("e", b"E" * 10)  # e is tampered: d is stored, e refused, the rest never asked for
    assert pair.download("d", "e", "a", "missing") == 1
    assert pair.artifacts() == [b"a" * 10, b"b" * 10, b"c" * 10, b"d" * 10]
    for reqs in pair.fetched("targets/"):
        assert sorted(reqs) == ["targets/d", "targets/e"], reqs  # courier-tuf asks for both at once


def test_options_in_any_order(tuf):
    repo, pair = tuf()
    repo.add_target("targets", "f", b"order")
    repo.bump_targets()
    pair.init()
    for c in (pair.ref, pair.cut):
        c.run("download", "--target-dir", c.tdir, "--target-name", "f", "--metadata-url", c.server.metadata_url,
              "--target-base-url", c.server.targets_url, "--metadata-dir", c.mdir)
    assert pair._agree("download, options after the command") == 0
    assert pair.artifacts() == [b"order"]


def test_already_downloaded_artifact_not_fetched_again(tuf):
    repo, pair = tuf()
    repo.add_target("targets", "big.bin", os.urandom(100_000))
    repo.add_target("targets", "other.bin", b"other")
    repo.bump_targets()
    pair.init()
    assert pair.download("big.bin") == 0
    assert pair.fetched("targets/") == (["targets/big.bin"], ["targets/big.bin"])
    assert pair.download("big.bin", "other.bin") == 0
    assert pair.fetched("targets/") == (["targets/other.bin"], ["targets/other.bin"])
    # A changed artifact (new hashes in new metadata) is fetched again.
    repo.add_target("targets", "big.bin", b"smaller now")
    repo.bump_targets()
    assert pair.download("big.bin") == 0
    assert pair.fetched("targets/") == (["targets/big.bin"], ["targets/big.bin"])
    assert b"smaller now" in pair.artifacts()


def test_consistent_snapshot(tuf):
    repo, pair = tuf(consistent_snapshot=True)
    data = b"consistent\n"
    repo.add_target("targets", "dir/file.txt", data)
    repo.bump_targets()
    pair.init()
    assert pair.download("dir/file.txt") == 0
    assert pair.artifacts() == [data]
    assert pair.versions() == {"root": 1, "timestamp": 2, "snapshot": 2, "targets": 2}
    # Versioned metadata names and hash-prefixed targets: never the plain names (timestamp excepted).
    for reqs in (pair.ref.requests, pair.cut.requests):
        assert "metadata/2.snapshot.json" in reqs and "metadata/2.targets.json" in reqs, reqs
        assert "metadata/snapshot.json" not in reqs and "metadata/targets.json" not in reqs, reqs
        assert repo.target_url_paths("dir/file.txt") == [r for r in reqs if r.startswith("targets/")], reqs


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_key_types(tuf, key_type):
    """Every role signed with key_type; then root rotates to another type to check the mix."""
    repo, pair = tuf(key_type=key_type)
    repo.add_target("targets", "t", key_type.encode())
    repo.bump_targets()
    pair.init()
    assert pair.download("t") == 0
    assert pair.artifacts() == [key_type.encode()]
    other = KEY_TYPES[(KEY_TYPES.index(key_type) + 1) % len(KEY_TYPES)]
    repo.rotate_keys("root", key_type=other)
    repo.rotate_keys("timestamp", key_type=other)
    repo.publish_root()
    repo.update_timestamp()
    assert pair.refresh() == 0
    assert pair.versions() == {"root": 2, "timestamp": 3, "snapshot": 2, "targets": 2}


@pytest.mark.parametrize("missing", ["metadata/timestamp.json", "metadata/snapshot.json", "metadata/targets.json",
                                     "targets/f"])
def test_missing_file_fails(tuf, missing):
    repo, pair = tuf()
    repo.add_target("targets", "f", b"f")
    repo.bump_targets()
    del repo.served[missing]                 # the server answers 404
    pair.init()
    assert pair.download("f") == 1
    assert pair.artifacts() == []
