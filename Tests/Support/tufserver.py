#!/usr/bin/env python3
"""The HTTP server of Courier's TUF tests (stdlib only), on 127.0.0.1 and a kernel-chosen port.

Two ways to run it, one request handler:
  * in a test process: `RepoServer(repo)` (a thread) serves a `tufrepo.Repo`'s `served` map and
    `endless` set, and keeps the request log in memory (`requests`, `fetched(prefix)`); the
    Python interop tests (Tests/interop/tuf) use it;
  * as a program, for the Swift tests and scripts:

        tufserver.py ROOT LOGFILE

    prints the port as the first line of stdout and serves the files of ROOT (a directory that
    `tufrepo.py ROOT ...` keeps: metadata/, targets/). Each request's path (as sent, query cut)
    is appended to LOGFILE, one per line. ROOT/control.json, re-read on every request, bends
    the answers:
      {"endless": ["/metadata/timestamp.json"],   200 without a length, bytes until the client leaves
       "status": {"/metadata/2.root.json": 403}}  that status, empty body

URL space: /metadata/FILE and /targets/PATH. A metadata file name is one path segment whose role
part arrives percent-encoded (`role%2Fwith%20space.json`); it is looked up in the form a TUF
repository publishes it (python-tuf's `quote(role, safe="")`), so `metadata/a/b.json` (an
unencoded "/") is not the role "a/b" and gets a 404. A target path is percent-decoded.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote

# An endless body stops here so that a client that never stops reading fails its test (it gets
# bytes that do not verify, or its result differs from the reference's) instead of hanging it.
ENDLESS_CAP = 64 * 1024 * 1024


def lookup_key(raw: str) -> str | None:
    """A request path (no leading "/") -> the key of the file it names (`metadata/NAME` with NAME
    re-encoded as published, `targets/PATH` decoded), or None when it names nothing servable."""
    area, _, rest = raw.partition("/")
    if area == "metadata":
        if "/" in rest:
            return None
        # quote never encodes ".", so encoding the whole `[N.]role.json` equals encoding the role.
        return "metadata/" + quote(unquote(rest), safe="")
    if area == "targets":
        return "targets/" + unquote(rest)
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        sent = self.path.split("?", 1)[0].split("#", 1)[0]
        what, data = srv.answer(sent)
        if what == "endless":
            srv.note_endless(self._endless())
        elif what == "status" or data is None:
            self.send_response(data if what == "status" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(data)

    def _endless(self) -> int:
        """No Content-Length: the body is "everything until the connection closes", the way a
        malicious mirror streams forever. A client must stop at the length it expects. Returns
        the bytes sent."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"{" * 65536
        sent = 0
        try:
            while sent < ENDLESS_CAP:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True
        return sent

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass  # the request log is the server's own


class RepoServer(ThreadingHTTPServer):
    """Serves one `tufrepo.Repo`'s current `served` state from a daemon thread."""

    daemon_threads = True

    def __init__(self, repo):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repo = repo
        self.lock = threading.Lock()
        self.requests: list[str] = []  # paths as sent, without the leading "/"
        # Endless bodies a client read all the way to ENDLESS_CAP: it did not stop where it should.
        self.endless_read_to_cap = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, sent: str) -> tuple[str, bytes | None]:
        raw = sent.lstrip("/")
        key = lookup_key(raw)
        with self.lock:
            self.requests.append(raw)
            if key in self.repo.endless:
                return "endless", None
            return "data", self.repo.served.get(key) if key is not None else None

    def note_endless(self, sent: int) -> None:
        with self.lock:
            self.endless_read_to_cap += sent >= ENDLESS_CAP

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/metadata/"

    @property
    def targets_url(self) -> str:
        return f"{self.base}/targets/"

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()
            self.endless_read_to_cap = 0

    def fetched(self, prefix: str) -> list[str]:
        """Logged requests (decoded) that start with prefix, e.g. 'targets/' or 'metadata/2.root'."""
        with self.lock:
            return [unquote(r) for r in self.requests if unquote(r).startswith(prefix)]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class DirServer(ThreadingHTTPServer):
    """Serves the files of a repository directory, steered by its control.json; logs to a file."""

    daemon_threads = True

    def __init__(self, root: str, log: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.log = root, log

    def answer(self, sent: str) -> tuple[str, bytes | int | None]:
        with open(self.log, "a") as f:
            f.write(sent + "\n")
        try:
            with open(os.path.join(self.root, "control.json")) as f:
                control = json.load(f)
        except OSError:
            control = {}
        if sent in control.get("endless", []):
            return "endless", None
        status = control.get("status", {}).get(sent)
        if status is not None:
            return "status", status
        key = lookup_key(sent.lstrip("/"))
        if key is None or ".." in key.split("/"):
            return "data", None
        try:
            with open(os.path.join(self.root, key), "rb") as f:
                return "data", f.read()
        except OSError:  # missing, or a directory
            return "data", None

    def note_endless(self, sent: int) -> None:
        pass


def main() -> None:
    server = DirServer(sys.argv[1], sys.argv[2])
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
