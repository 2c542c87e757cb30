"""courier-stage with a `tuf` source (issue #14): a python-tuf repository as the upstream, served on
127.0.0.1; the stager publishes its targets as a signed Courier package, refuses a cycle when a
target does not match its signed hashes (exit 7) or the timestamp has expired (exit 8), with a
reason that says so, and publishes nothing then."""
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tufrepo import Repo
from tufserver import RepoServer

HERE = os.path.dirname(os.path.abspath(__file__))
PYCPKG = os.path.join(HERE, "..", "..", "..", "scripts", "pycpkg.py")
ENV = {**os.environ, "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}


def stage(tmp, *args):
    exe = os.path.join(os.environ["COURIER_BIN"], "courier-stage")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, env=ENV, cwd=tmp)


def revisions(outbox, type_):
    d = os.path.join(outbox, type_)
    return sorted(n for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def extract(tmp, rev):
    """The ids-rules package of revision rev, verified and extracted by pycpkg into a fresh
    directory: (that directory, the sorted relative paths of its files)."""
    pkg = tmp / "outbox" / "ids-rules" / rev / f"ids-rules_{rev}.cpkg"
    out = tmp / f"extracted-{rev}"
    x = subprocess.run([sys.executable, PYCPKG, "extract", "--trust", str(tmp / "stage.key.pub"), "--into", str(out), str(pkg)],
                       capture_output=True, text=True)
    assert x.returncode == 0, x.stderr
    return out, sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)


@pytest.fixture
def upstream(tmp_path):
    repo = Repo()
    repo.add_target("targets", "rules/emerging.rules", b"alert tcp any any -> any 80 (sid:1;)\n" * 200)
    repo.add_target("targets", "rules/classification.config", b"config classification: trojan\n")
    repo.add_target("targets", "README", b"not part of the tree\n")
    repo.add_target("targets", "rules/old/retired.rules", b"a deeper segment: not matched by rules/*\n")
    repo.bump_targets()
    srv = RepoServer(repo)
    root = tmp_path / "vendor-root.json"
    root.write_bytes(repo.trusted_root())
    assert stage(tmp_path, "keygen", "--out", str(tmp_path / "stage.key")).returncode == 0
    (tmp_path / "stage.toml").write_text(
        'outbox = "outbox"\nkey = "stage.key"\nstate_dir = "state"\n'
        "[types.ids-rules]\n"
        'source = "tuf"\n'
        f'metadata_url = "{srv.metadata_url}"\n'
        f'targets_url = "{srv.targets_url}"\n'
        'trusted_root = "vendor-root.json"\n'
        'target_pattern = "rules/*"\n')
    yield repo, srv, tmp_path
    srv.stop()


def test_stage_publishes_the_verified_targets(upstream):
    repo, srv, tmp = upstream
    r = stage(tmp, "run", "--config", "stage.toml")
    assert r.returncode == 0, r.stderr
    revs = revisions(tmp / "outbox", "ids-rules")
    assert len(revs) == 1, r.stderr
    out, got = extract(tmp, revs[0])
    assert got == ["rules/classification.config", "rules/emerging.rules"]
    assert (out / "rules" / "emerging.rules").read_bytes() == b"alert tcp any any -> any 80 (sid:1;)\n" * 200
    # Nothing new upstream: no new revision, exit 0.
    again = stage(tmp, "run", "--config", "stage.toml")
    assert again.returncode == 0, again.stderr
    assert revisions(tmp / "outbox", "ids-rules") == revs


def test_tampered_target_refuses_the_cycle(upstream):
    repo, srv, tmp = upstream
    assert stage(tmp, "run", "--config", "stage.toml").returncode == 0
    before = revisions(tmp / "outbox", "ids-rules")
    # A new version is signed, but the mirror serves other bytes of the same length.
    good = b"alert tcp any any -> any 443 (sid:2;)\n" * 200
    repo.add_target("targets", "rules/emerging.rules", good)
    repo.bump_targets()
    repo.serve_artifact("rules/emerging.rules", b"X" * len(good))
    r = stage(tmp, "run", "--config", "stage.toml")
    assert r.returncode == 7, f"exit {r.returncode}\n{r.stderr}"
    assert "rules/emerging.rules" in r.stderr and "hash" in r.stderr.lower(), r.stderr
    assert revisions(tmp / "outbox", "ids-rules") == before


def test_expired_timestamp_refuses_the_cycle(upstream):
    repo, srv, tmp = upstream
    repo.timestamp.expires = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    repo.update_timestamp()
    r = stage(tmp, "run", "--config", "stage.toml")
    assert r.returncode == 8, f"exit {r.returncode}\n{r.stderr}"
    assert "timestamp" in r.stderr and "expired" in r.stderr, r.stderr
    # The summary is lines, not one line with escaped newlines.
    assert "\\n" not in r.stderr and r.stderr.rstrip().splitlines()[-1].startswith("0/1 types ok"), r.stderr
    assert revisions(tmp / "outbox", "ids-rules") == []


def test_target_above_max_bytes_is_refused_before_download(upstream):
    repo, srv, tmp = upstream
    cfg = (tmp / "stage.toml").read_text()
    (tmp / "stage.toml").write_text(cfg.replace('state_dir = "state"\n', 'state_dir = "state"\n[http]\nmax_bytes = "1K"\n'))
    srv.clear_log()
    r = stage(tmp, "run", "--config", "stage.toml")
    assert r.returncode == 10, f"exit {r.returncode}\n{r.stderr}"
    assert "rules/emerging.rules" in r.stderr and "max_bytes" in r.stderr, r.stderr
    assert srv.fetched("targets/rules/emerging") == [], srv.fetched("")   # refused before its download
    assert revisions(tmp / "outbox", "ids-rules") == []


def test_target_list_and_revision_from_custom_metadata(upstream):
    """`targets = [...]` picks exactly those targets; `revision_key` takes the revision from their
    custom metadata; targets naming two different revisions fail the type."""
    repo, srv, tmp = upstream
    for path in ("rules/emerging.rules", "rules/classification.config"):
        repo.role("targets").targets[path].unrecognized_fields["custom"] = {"revision": 20261129007}
    repo.bump_targets()
    cfg = (tmp / "stage.toml").read_text().replace(
        'target_pattern = "rules/*"\n',
        'targets = ["rules/emerging.rules", "README"]\nrevision_key = "revision"\n')
    (tmp / "stage.toml").write_text(cfg)
    r = stage(tmp, "run", "--config", "stage.toml")
    assert r.returncode == 0, r.stderr
    assert revisions(tmp / "outbox", "ids-rules") == ["20261129007"]
    _, got = extract(tmp, "20261129007")
    assert got == ["README", "rules/emerging.rules"]
    # README now names another revision than emerging.rules: two revisions → the type fails.
    repo.role("targets").targets["README"].unrecognized_fields["custom"] = {"revision": 20261129008}
    repo.bump_targets()
    bad = stage(tmp, "run", "--config", "stage.toml")
    assert bad.returncode != 0 and "different revisions" in bad.stderr, bad.stderr
    assert revisions(tmp / "outbox", "ids-rules") == ["20261129007"]
