"""HTTP server on 127.0.0.1 (ephemeral port, daemon thread) serving one repo.Repo's current state.

URL space: /metadata/<file> and /targets/<path>, i.e. metadata URL http://127.0.0.1:PORT/metadata/
and target base URL http://127.0.0.1:PORT/targets/. Every request is logged (raw path as sent,
and decoded) so that tests can assert what a client fetched, e.g. that an artifact it already
holds was not fetched again, or that a role name was percent-encoded.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote

# An endless body stops here so that a client that never stops reading fails the test
# (its result differs from the reference's) instead of hanging it.
ENDLESS_CAP = 64 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        srv: RepoServer = self.server  # type: ignore[assignment]
        raw = self.path.split("?", 1)[0].split("#", 1)[0].lstrip("/")
        key = self._lookup_key(raw)
        with srv.lock:
            srv.requests.append(raw)
            endless = key in srv.repo.endless
            data = srv.repo.served.get(key) if key is not None else None
        if endless:
            self._endless()
        elif data is None:
            self.send_error(404)
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(data)

    @staticmethod
    def _lookup_key(raw: str) -> str | None:
        """Map a request path to a key of Repo.served (decoded form).

        A metadata file name is a single path segment: a role name must arrive percent-encoded,
        so `metadata/a/b.json` (an unencoded "/") is not the role "a/b" and gets a 404.
        """
        area, _, rest = raw.partition("/")
        if area == "metadata":
            if "/" in rest:
                return None
            return "metadata/" + _quote_role_file(unquote(rest))
        if area == "targets":
            return "targets/" + unquote(rest)
        return None

    def _endless(self) -> None:
        # No Content-Length: the body is "everything until the connection closes", the way a
        # malicious mirror streams forever. A client must stop at the length it expects.
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
        srv: RepoServer = self.server  # type: ignore[assignment]
        with srv.lock:
            srv.endless_read_to_cap += sent >= ENDLESS_CAP

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass  # the request log is RepoServer.requests


def _quote_role_file(name: str) -> str:
    """Re-encode a decoded metadata file name the way Repo keys are stored (`[N.]quote(role).json`;
    quote never encodes ".", so encoding the whole name equals encoding the role part)."""
    return quote(name, safe="")


class RepoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, repo):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repo = repo
        self.lock = threading.Lock()
        self.requests: list[str] = []
        # Endless bodies a client read all the way to ENDLESS_CAP: it did not stop where it should.
        self.endless_read_to_cap = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

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
