#!/usr/bin/env python3
"""A tiny vendor download site for `make demo`: serves one directory on 127.0.0.1.

Usage: httpd.py DIR PORT_FILE LOG_FILE

Binds 127.0.0.1 on a free port (port 0) and writes the port to PORT_FILE once it listens, so
the demo never races another program for a port. GET and HEAD only; an ETag is the SHA-256 of
the file, and `If-None-Match` gets a 304, so the stager's conditional GET is exercised without
depending on one-second Last-Modified granularity (a demo can publish twice in one second).
One line per request goes to LOG_FILE. Stops on SIGTERM.
"""
import hashlib, http.server, os, signal, sys


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "courier-demo-vendor/1"
    protocol_version = "HTTP/1.1"
    root = "."
    log = None

    def _file(self):
        name = self.path.split("?", 1)[0].lstrip("/")
        if not name or "/" in name or name.startswith("."):
            return None
        path = os.path.join(self.root, name)
        return path if os.path.isfile(path) else None

    def _serve(self, body):
        path = self._file()
        if path is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(path, "rb") as f:
            data = f.read()
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:32]
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):
        self._serve(True)

    def do_HEAD(self):
        self._serve(False)

    def log_request(self, code="-", size="-"):
        self.log.write(f"{self.command} {self.path} {int(code) if str(code).isdigit() else code}\n")
        self.log.flush()

    def log_message(self, fmt, *args):  # errors: into the log, never on the demo's terminal
        self.log.write("# " + (fmt % args) + "\n")
        self.log.flush()


def main():
    root, port_file, log_file = sys.argv[1:4]
    Handler.root = os.path.abspath(root)
    Handler.log = open(log_file, "a", buffering=1)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{server.server_address[1]}\n")
    os.rename(tmp, port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
