"""Shared harness of the TUF interop tests: runs the reference client and the client under test
side by side against one simulated repository and checks that they agree.

Client under test: $COURIER_TUF (a command line, split like a shell would) if set, else
$COURIER_BIN/courier-tuf. There is deliberately no skip when it is missing or failing: every
scenario must then fail, so a broken courier-tuf cannot pass unnoticed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# The repository, its server and the reference client are the ones the Swift tests run too.
SUPPORT = os.path.join(HERE, "..", "..", "Support")
sys.path.insert(0, SUPPORT)
sys.dont_write_bytecode = True  # no __pycache__ next to tufrepo.py / tufserver.py

from tufrepo import Repo  # noqa: E402
from tufserver import RepoServer  # noqa: E402

REFERENCE = [sys.executable, os.path.join(SUPPORT, "pytufclient.py")]
TIMEOUT = 120
# The repository is on 127.0.0.1: no proxy from the environment may stand in between.
CLIENT_ENV = {**os.environ, "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}


def client_under_test() -> list[str]:
    if os.environ.get("COURIER_TUF"):
        return shlex.split(os.environ["COURIER_TUF"])
    return [os.path.join(os.environ.get("COURIER_BIN", "/tmp/courier-bin"), "courier-tuf")]


class Client:
    """One client with its own metadata and target dirs."""

    def __init__(self, name: str, cmd: list[str], workdir: str, server: RepoServer):
        self.name, self.cmd, self.server = name, cmd, server
        self.mdir = os.path.join(workdir, name, "metadata")
        self.tdir = os.path.join(workdir, name, "targets")
        self.root_file = os.path.join(workdir, name, "trusted_root.json")
        os.makedirs(self.mdir)
        os.makedirs(self.tdir)
        self.last: subprocess.CompletedProcess | None = None
        self.requests: list[str] = []
        self.read_endless = 0

    def run(self, *args: str, days: int = 0) -> int:
        """Run the client; `days` moves its clock with faketime (libc time calls)."""
        prefix = ["faketime", "-f", f"+{days}d"] if days else []
        self.server.clear_log()
        try:
            self.last = subprocess.run(prefix + self.cmd + list(args), capture_output=True, text=True,
                                       timeout=TIMEOUT, stdin=subprocess.DEVNULL, env=CLIENT_ENV)
        except FileNotFoundError as e:  # a missing client is a failed run (exit 127, as a shell says)
            self.last = subprocess.CompletedProcess(args, 127, "", str(e))
        self.requests = self.server.fetched("")
        self.read_endless = self.server.endless_read_to_cap
        return self.last.returncode

    def init(self, root: bytes) -> int:
        with open(self.root_file, "wb") as f:
            f.write(root)
        return self.run("--metadata-dir", self.mdir, "init", self.root_file)

    def refresh(self, days: int = 0) -> int:
        return self.run("--metadata-dir", self.mdir, "--metadata-url", self.server.metadata_url, "refresh", days=days)

    def download(self, *names: str, days: int = 0) -> int:
        args = ["--metadata-dir", self.mdir, "--metadata-url", self.server.metadata_url]
        for n in names:
            args += ["--target-name", n]
        args += ["--target-base-url", self.server.targets_url, "--target-dir", self.tdir, "download"]
        return self.run(*args, days=days)

    def metadata(self) -> dict[str, bytes]:
        """The top-level *.json files of the metadata dir (symlinks followed) and their bytes.
        Subdirectories are the client's business (python-tuf keeps root_history/ there)."""
        out = {}
        for n in os.listdir(self.mdir):
            p = os.path.join(self.mdir, n)
            if n.endswith(".json") and os.path.isfile(p):
                with open(p, "rb") as f:
                    out[n] = f.read()
        return out

    def versions(self) -> dict[str, int]:
        """File name without .json -> version of the metadata it holds."""
        return {n[:-5]: json.loads(b)["signed"]["version"] for n, b in self.metadata().items()}

    def artifacts(self) -> list[bytes]:
        """Contents of every regular file below the target dir, sorted. File names are not compared:
        the protocol lets each client name its artifacts as it likes."""
        out = []
        for d, _, files in os.walk(self.tdir):
            for n in files:
                with open(os.path.join(d, n), "rb") as f:
                    out.append(f.read())
        return sorted(out)

    def describe(self) -> str:
        r = self.last
        if r is None:
            return f"{self.name}: not run"
        return (f"--- {self.name}: {shlex.join(str(a) for a in r.args)}\nexit {r.returncode}\n"
                f"requests: {self.requests}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-4000:]}")


class Pair:
    """The reference and the client under test, driven in lock step. Each step runs the reference
    first, then the client under test, against the same served state, and asserts they agree on
    the exit code, the trusted metadata (file names and exact bytes) and the downloaded artifacts."""

    def __init__(self, repo: Repo, server: RepoServer, workdir: str):
        self.repo, self.server = repo, server
        self.ref = Client("reference", REFERENCE, workdir, server)
        self.cut = Client("under-test", client_under_test(), workdir, server)

    def _agree(self, step: str) -> int:
        ref, cut = self.ref, self.cut
        ctx = f"{step}\n{ref.describe()}\n{cut.describe()}"
        assert ref.last.returncode in (0, 1), f"reference client crashed\n{ctx}"
        assert cut.last.returncode == ref.last.returncode, f"exit codes differ\n{ctx}"
        for c in (ref, cut):
            assert c.read_endless == 0, f"{c.name} read an endless body to the server's cap\n{ctx}"
        rm, cm = ref.metadata(), cut.metadata()
        assert sorted(cm) == sorted(rm), f"metadata files differ: {sorted(cm)} vs reference {sorted(rm)}\n{ctx}"
        for n in rm:
            assert cm[n] == rm[n], f"{n} differs from the reference's (versions {cut.versions()} vs {ref.versions()})\n{ctx}"
        ra, ca = ref.artifacts(), cut.artifacts()
        assert ca == ra, (f"downloaded artifacts differ: {[hashlib.sha256(a).hexdigest()[:12] for a in ca]} vs "
                          f"reference {[hashlib.sha256(a).hexdigest()[:12] for a in ra]}\n{ctx}")
        return ref.last.returncode

    def init(self) -> None:
        root = self.repo.trusted_root()
        self.ref.init(root)
        self.cut.init(root)
        self._agree("init")
        assert self.ref.last.returncode == 0 and self.ref.requests == [] and self.cut.requests == [], \
            f"init must succeed without network\n{self.ref.describe()}\n{self.cut.describe()}"

    def refresh(self, days: int = 0) -> int:
        self.ref.refresh(days)
        self.cut.refresh(days)
        return self._agree(f"refresh (clock +{days}d)")

    def download(self, *names: str, days: int = 0) -> int:
        self.ref.download(*names, days=days)
        self.cut.download(*names, days=days)
        return self._agree(f"download {names} (clock +{days}d)")

    def versions(self) -> dict[str, int]:
        return self.ref.versions()  # equal to the client under test's once a step has agreed

    def artifacts(self) -> list[bytes]:
        return self.ref.artifacts()

    def fetched(self, prefix: str) -> tuple[list[str], list[str]]:
        """Requests of the last step starting with prefix: (reference's, client under test's)."""
        return ([r for r in self.ref.requests if r.startswith(prefix)],
                [r for r in self.cut.requests if r.startswith(prefix)])


@pytest.fixture
def tuf(tmp_path):
    """Factory: tuf(key_type=..., consistent_snapshot=...) -> (repo, pair) served on 127.0.0.1."""
    servers = []

    def make(**kw) -> tuple[Repo, Pair]:
        repo = Repo(**kw)
        srv = RepoServer(repo)
        servers.append(srv)
        return repo, Pair(repo, srv, str(tmp_path / f"run{len(servers)}"))

    yield make
    for s in servers:
        s.stop()
