"""TUF interop: delegated targets. Graphs with terminating roles, path patterns, priorities and
cycles; succinct hash bins (TAP 15); unusual role and target names. Each step is compared
between the two clients (conftest.Pair), which includes the delegated roles each one trusts."""
import os
from urllib.parse import quote

import pytest

TOP = {"root", "timestamp", "snapshot", "targets"}


def trusted(pair) -> set[str]:
    return set(pair.versions())


def test_terminating_delegation_stops_the_search(tuf):
    repo, pair = tuf()
    repo.delegate("targets", "A", paths=["*"], terminating=True)
    repo.delegate("targets", "B", paths=["*"])
    repo.add_target("B", "f", b"from B")
    repo.bump_targets("A", "B", "targets")
    pair.init()
    assert pair.download("f") == 1           # A is terminating and has no f: B is never asked
    assert trusted(pair) == TOP | {"A"}
    for reqs in pair.fetched("metadata/B"):
        assert reqs == [], reqs
    # Without the terminating flag the search goes on to B.
    repo.targets.delegations.roles["A"].terminating = False
    repo.bump_targets()
    assert pair.download("f") == 0
    assert pair.artifacts() == [b"from B"]
    assert trusted(pair) == TOP | {"A", "B"}


def test_delegation_order_is_priority(tuf):
    # Consistent snapshot: the two versions of f are served side by side under their hashes.
    repo, pair = tuf(consistent_snapshot=True)
    repo.delegate("targets", "first")
    repo.delegate("targets", "second")
    repo.add_target("first", "f", b"first wins")
    repo.add_target("second", "f", b"second loses")
    repo.bump_targets("first", "second", "targets")
    pair.init()
    assert pair.download("f") == 0
    assert pair.artifacts() == [b"first wins"]
    assert trusted(pair) == TOP | {"first"}  # found in the first: the second is not loaded


def test_path_patterns(tuf):
    repo, pair = tuf()
    repo.delegate("targets", "A", paths=["a/*"])
    repo.delegate("targets", "B", paths=["b/*.txt"])
    repo.delegate("A", "C", paths=["a/c*"])
    repo.add_target("A", "a/one", b"a/one")
    repo.add_target("A", "b/evil.txt", b"A may not sign b/")   # outside A's paths: ignored
    repo.add_target("A", "a/sub/deep", b"'*' does not match '/'")
    repo.add_target("B", "b/evil.txt", b"B's b/evil.txt")
    repo.add_target("B", "b/x.bin", b"not a .txt")
    repo.add_target("C", "a/c1", b"a/c1 via A then C")
    repo.bump_targets("A", "B", "C", "targets")
    pair.init()
    assert pair.download("a/one", "b/evil.txt", "a/c1") == 0
    assert pair.artifacts() == sorted([b"a/one", b"B's b/evil.txt", b"a/c1 via A then C"])
    assert trusted(pair) == TOP | {"A", "B", "C"}
    assert pair.download("b/x.bin") == 1
    assert pair.download("a/sub/deep") == 1
    assert len(pair.artifacts()) == 3


def test_delegation_cycle_terminates(tuf):
    repo, pair = tuf()
    repo.delegate("targets", "A")
    repo.delegate("A", "B")
    repo.delegate("B", "A")                  # A -> B -> A
    repo.add_target("B", "in-b", b"found past the cycle")
    repo.bump_targets("A", "B", "targets")
    pair.init()
    assert pair.download("nowhere") == 1     # must end, not loop
    assert trusted(pair) == TOP | {"A", "B"}
    assert pair.download("in-b") == 0
    assert pair.artifacts() == [b"found past the cycle"]


def test_delegated_role_wrong_key_and_rollback(tuf):
    repo, pair = tuf()
    repo.delegate("targets", "A")
    repo.add_target("A", "f", b"v1")
    repo.bump_targets("A", "targets")
    pair.init()
    assert pair.download("f") == 0
    # A v2 signed by a key the delegation does not know: refused, A v1 stays trusted.
    repo.add_target("A", "f", b"v2")
    repo.bump_targets("A", signers=[repo.new_signer()])
    assert pair.download("f") == 1
    assert pair.versions()["A"] == 1
    # Snapshot now lists A v1 again (A was at v2 in the previous snapshot): rollback, refused.
    repo.role("A").version = 1
    repo.publish("A", bump=False)
    repo.update_snapshot()
    assert pair.download("f") == 1
    assert pair.artifacts() == [b"v1"]


def test_hash_bins(tuf):
    repo, pair = tuf()
    bins = repo.succinct("targets", bit_length=3, prefix="bin")
    assert len(bins) == 8
    names = [f"file-{i}.txt" for i in range(6)]
    for n in names:
        repo.add_target(repo.bin_for("targets", n), n, n.encode())
    for b in bins:
        repo.publish(b)
    repo.bump_targets()
    pair.init()
    assert pair.download(*names[:3]) == 0
    assert pair.artifacts() == sorted(n.encode() for n in names[:3])
    # Only the bins that hold the asked-for targets were fetched and trusted.
    assert trusted(pair) == TOP | {repo.bin_for("targets", n) for n in names[:3]}
    # A target listed in a bin it does not hash to is not found.
    misplaced = "misplaced.txt"
    wrong = next(b for b in bins if b != repo.bin_for("targets", misplaced))
    repo.add_target(wrong, misplaced, b"wrong bin")
    repo.bump_targets(wrong)
    assert pair.download(misplaced) == 1


UNUSUAL_ROLES = ["?", "#", "/delegatedrole", "../delegatedrole", "with space", "50%", "a/b", "ünïcode"]


@pytest.mark.parametrize("consistent", [False, True], ids=["plain", "consistent"])
@pytest.mark.parametrize("role", UNUSUAL_ROLES)
def test_unusual_role_names(tuf, role, consistent):
    """Role names go percent-encoded into URLs and file names, and never escape the metadata dir."""
    repo, pair = tuf(consistent_snapshot=consistent)
    repo.delegate("targets", role)
    repo.add_target(role, "t", role.encode())
    repo.bump_targets(role, "targets")
    pair.init()
    assert pair.download("t") == 0
    assert pair.artifacts() == [role.encode()]
    assert f"{quote(role, safe='')}.json" in pair.ref.metadata()
    assert trusted(pair) == TOP | {quote(role, safe="")}
    version = f"{repo.role(role).version}." if consistent else ""
    for reqs in pair.fetched("metadata/"):
        assert f"metadata/{version}{role}.json" in reqs, reqs
    for c in (pair.ref, pair.cut):           # nothing written beside the client's own dirs
        assert sorted(os.listdir(os.path.dirname(c.mdir))) == ["metadata", "targets", "trusted_root.json"]


UNUSUAL_TARGETS = ["with space/file name.txt", "percent%sign.txt", "dots..in..name/..hidden", "deep/a/b/c.txt",
                   "ünï.txt", "plus+and=equals;semi"]


@pytest.mark.parametrize("consistent", [False, True], ids=["plain", "consistent"])
def test_unusual_target_names(tuf, consistent):
    repo, pair = tuf(consistent_snapshot=consistent)
    for n in UNUSUAL_TARGETS:
        repo.add_target("targets", n, n.encode())
    repo.bump_targets()
    pair.init()
    assert pair.download(*UNUSUAL_TARGETS) == 0
    assert pair.artifacts() == sorted(n.encode() for n in UNUSUAL_TARGETS)
    for reqs in pair.fetched("targets/"):
        assert sorted(reqs) == sorted(p for n in UNUSUAL_TARGETS for p in repo.target_url_paths(n)), reqs
    for c in (pair.ref, pair.cut):
        assert sorted(os.listdir(os.path.dirname(c.mdir))) == ["metadata", "targets", "trusted_root.json"]
