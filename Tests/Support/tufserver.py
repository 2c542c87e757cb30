#!/usr/bin/env python3
"""A static HTTP server for Courier's TUF tests (stdlib only).

    tufserver.py ROOT LOGFILE

Listens on 127.0.0.1 on a kernel-chosen port and prints the port as the first line of stdout.
Serves ROOT's files by the request path taken literally, without percent-decoding, so that a
client asking for `role%2Fwith%20space.json` gets the file of that very name (as a TUF
repository publishes it). Each request's path is appended to LOGFILE, one per line.

ROOT/control.json, re-read on every request, bends the answers:
  {"endless": ["/metadata/timestamp.json"],   200 without a length, bytes until the client leaves
   "status": {"/metadata/2.root.json": 403}}  that status, empty body
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = sys.argv[1]
LOG = sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        with open(LOG, "a") as f:
            f.write(path + "\n")
        try:
            with open(os.path.join(ROOT, "control.json")) as f:
                control = json.load(f)
        except OSError:
            control = {}
        if path in control.get("endless", []):
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:
                return
        status = control.get("status", {}).get(path)
        local = os.path.join(ROOT, path.lstrip("/"))
        if status is None and (".." in path.split("/") or not os.path.isfile(local)):
            status = 404
        if status is not None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(local, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
