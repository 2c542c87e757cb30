"""The harness shared with the Swift tests (Tests/Support/tufrepo.py, tufserver.py) in the two ways
they use it: a repository saved to a directory and loaded back goes on publishing versions both
clients accept (keys, schemes, thresholds, delegations and history survive), and the command line
the Swift tests run builds a repository that the directory server serves to both clients."""
import os
import subprocess
import sys

import pytest

from conftest import CLIENT_ENV, REFERENCE, SUPPORT, client_under_test
from tufrepo import Repo


@pytest.mark.parametrize("key_type", ["ed25519", "rsa-pkcs1v15-sha256"])
def test_a_loaded_repository_keeps_publishing(tuf, tmp_path, key_type):
    repo, pair = tuf(key_type=key_type, consistent_snapshot=True)
    repo.add_key("root")
    repo.set_threshold("root", 2)
    repo.publish_root()
    repo.delegate("targets", "role/x", paths=["d/*"])
    repo.add_target("role/x", "d/f", b"f")
    repo.bump_targets("targets", "role/x")
    pair.init()
    assert pair.download("d/f") == 0

    repo.save(str(tmp_path / "saved"))
    loaded = Repo.load(str(tmp_path / "saved"))
    assert loaded.served == repo.served
    assert {r: [s.public_key for s in ss] for r, ss in loaded.signers.items()} == \
        {r: [s.public_key for s in ss] for r, ss in repo.signers.items()}
    pair.server.repo = loaded
    loaded.rotate_keys("timestamp")
    loaded.publish_root()                # signed by both old root keys: threshold 2 still met
    loaded.add_target("role/x", "d/g", b"g")
    loaded.bump_targets("role/x")
    assert pair.download("d/g") == 0
    assert pair.versions()["root"] == 3 and pair.artifacts() == [b"f", b"g"]


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, env=CLIENT_ENV,
                          stdin=subprocess.DEVNULL)


def test_the_command_line_repository_and_directory_server(tmp_path):
    d = str(tmp_path / "repo")
    tufrepo = [sys.executable, os.path.join(SUPPORT, "tufrepo.py"), d]
    for args in (["init", "--consistent"], ["add-target", "a/one.txt", "one"],
                 ["delegate", "role/with space", "deleg/*"],
                 ["add-target", "deleg/x.txt", "xx", "--role", "role/with space"],
                 ["rotate-root"], ["rotate-timestamp-key"]):
        r = run(*tufrepo, *args)
        assert r.returncode == 0, f"{args}: {r.stderr}"
    log = tmp_path / "requests.log"
    server = subprocess.Popen([sys.executable, os.path.join(SUPPORT, "tufserver.py"), d, str(log)],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        for name, cmd in (("reference", REFERENCE), ("under-test", client_under_test())):
            md, tg = str(tmp_path / name / "md"), str(tmp_path / name / "tg")
            assert run(*cmd, "--metadata-dir", md, "init", os.path.join(d, "metadata", "1.root.json")).returncode == 0
            get = [*cmd, "--metadata-dir", md, "--metadata-url", url + "/metadata/", "--target-name", "a/one.txt",
                   "--target-name", "deleg/x.txt", "--target-base-url", url + "/targets/", "--target-dir", tg,
                   "download"]
            r = run(*get)
            assert r.returncode == 0, f"{name}: {r.stderr}"
            assert sorted(open(os.path.join(tg, n), "rb").read() for n in os.listdir(tg)) == [b"one", b"xx"]
            assert "/metadata/3.root.json" in log.read_text().split("\n")
            assert "/metadata/2.role%2Fwith%20space.json" in log.read_text().split("\n")
        # control.json bends the answers: a forced status fails a fresh client's refresh.
        (tmp_path / "repo" / "control.json").write_text('{"status": {"/metadata/2.root.json": 403}}')
        md = str(tmp_path / "fresh" / "md")
        assert run(*REFERENCE, "--metadata-dir", md, "init", os.path.join(d, "metadata", "1.root.json")).returncode == 0
        assert run(*REFERENCE, "--metadata-dir", md, "--metadata-url", url + "/metadata/", "refresh").returncode == 1
    finally:
        server.kill()
        server.wait()
