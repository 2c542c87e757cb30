#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 server for Courier's fetcher tests (stdlib only, Python 3.11).

    python3 Tests/Support/faultserver.py LOGFILE [CERTFILE KEYFILE]

With CERTFILE and KEYFILE (PEM) it speaks HTTPS instead (the CA tests make a private CA with
openssl).

Listens on 127.0.0.1, port chosen by the kernel, and prints the port as the first line of
stdout. Every request is appended to LOGFILE as one JSON object per line: the request line,
path, and the headers the tests reason about (Range, If-Range, If-None-Match,
If-Modified-Since, User-Agent, whether Proxy-Authorization was present).

Bodies are deterministic so that the Swift side can check them byte for byte without a copy:
byte at offset o is BLOCK[o % 65521] with BLOCK[i] = (i*131 + (i >> 8)) & 0xff. 65521 is prime,
so a resume that appends at a wrong offset cannot produce the right bytes by accident.

Routes (query parameters in brackets):
  /file[?size=N&name=S&noetag=1&weak=1]  ETag/Last-Modified, 304 on a matching condition,
                                          Range "bytes=N-" with If-Range -> 206 (416 past the end)
  /big                                    /file with 64 MiB
  /notfound                               404
  /flaky/KEY[?fail=N&size=N]              500 for the first N requests to KEY, then /file
  /retry-after/KEY[?secs=S&times=T&status=503|429&date=1]
                                          status with Retry-After (seconds, or an HTTP-date) for
                                          the first T requests to KEY (default 1), then /file
  /truncated/KEY[?size=N&cut=M]           first request to KEY announces N bytes, sends M, closes;
                                          later ones are /file (so a Range resume works)
  /stallonce/KEY[?size=N&after=M&delay=S] first request to KEY announces N bytes (with validators),
                                          sends M, then sleeps S seconds (a client killed meanwhile
                                          leaves a .partial); later ones are /file
  /slow[?delay=S]                         sleeps S seconds before answering
  /stall[?size=N&after=M&delay=S]         sends the head and M bytes, then sleeps S seconds
  /endless                                200 without a length, bytes until the client goes away
  /forbidden                              403
  /busy/KEY[?status=429|503&times=T]      status without Retry-After for the first T requests to
                                          KEY (default: always), then /file
  /redirect/N                             302 -> /redirect/N-1 ... /redirect/0 is /file
  /loop/a, /loop/b                        302 to each other
"""
import email.utils
import json
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PRIME = 65521
BLOCK = bytes(((i * 131 + (i >> 8)) & 0xFF) for i in range(PRIME))
BIG_BLOCK = BLOCK * 17  # ~1.1 MB: slices of it serve any range with few writes
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"

counters = {}
counters_lock = threading.Lock()
log_lock = threading.Lock()
log_file = None


def bump(key):
    with counters_lock:
        counters[key] = counters.get(key, 0) + 1
        return counters[key]


def pieces(start, length):
    """The deterministic content from `start`, `length` bytes, in large slices."""
    pos, remaining = start, length
    while remaining > 0:
        off = pos % PRIME
        n = min(remaining, len(BIG_BLOCK) - off)
        yield BIG_BLOCK[off:off + n]
        pos += n
        remaining -= n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultserver/1"

    def log_message(self, fmt, *args):  # the JSON log is the log; keep stderr quiet
        pass

    def record(self):
        h = self.headers
        entry = {
            "line": self.requestline,
            "path": self.path,
            "range": h.get("Range"),
            "ifRange": h.get("If-Range"),
            "ifNoneMatch": h.get("If-None-Match"),
            "ifModifiedSince": h.get("If-Modified-Since"),
            "userAgent": h.get("User-Agent"),
            "proxyAuthorization": h.get("Proxy-Authorization") is not None,
            "headers": {k: v for k, v in h.items()},
            "time": time.time(),
        }
        with log_lock:
            log_file.write(json.dumps(entry) + "\n")
            log_file.flush()

    def send_plain(self, status, text, extra=None):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def write_content(self, start, length):
        for piece in pieces(start, length):
            self.wfile.write(piece)

    def serve_file(self, q, default_size=1000):
        size = int(q.get("size", [default_size])[0])
        name = q.get("name", ["f"])[0]
        validators = "noetag" not in q
        etag = ('W/' if "weak" in q else '') + f'"{name}-{size}"'
        h = self.headers
        if validators:
            inm = h.get("If-None-Match")
            ims = h.get("If-Modified-Since")
            if (inm is not None and etag in [t.strip() for t in inm.split(",")]) or \
               (inm is None and ims == LAST_MODIFIED):
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", LAST_MODIFIED)
                self.end_headers()
                return
        start = 0
        rng = h.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-") and validators:
            if_range = h.get("If-Range")
            if if_range is None or (if_range == etag and not etag.startswith("W/")) or if_range == LAST_MODIFIED:
                start = int(rng[len("bytes="):-1])
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
        self.send_response(206 if start else 200)
        if validators:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", LAST_MODIFIED)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.write_content(start, size - start)

    def do_GET(self):
        self.record()
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def route(self):
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        segs = [s for s in parts.path.split("/") if s]
        top = segs[0] if segs else ""

        if top == "file":
            self.serve_file(q)
        elif top == "big":
            self.serve_file({"size": [str(64 << 20)], "name": ["big"]})
        elif top == "forbidden":
            self.send_plain(403, "go away\n")
        elif top == "busy":
            n = bump("busy/" + segs[1])
            if n <= int(q.get("times", ["1000000"])[0]):
                self.send_plain(int(q.get("status", ["429"])[0]), "busy\n")
            else:
                self.serve_file(q)
        elif top == "notfound":
            self.send_plain(404, "no such thing\n")
        elif top == "flaky":
            n = bump("flaky/" + segs[1])
            if n <= int(q.get("fail", ["1"])[0]):
                self.send_plain(500, "boom\n")
            else:
                self.serve_file(q)
        elif top == "retry-after":
            n = bump("retry-after/" + segs[1])
            secs = int(q.get("secs", ["1"])[0])
            if n <= int(q.get("times", ["1"])[0]):
                value = email.utils.formatdate(time.time() + secs, usegmt=True) if "date" in q else str(secs)
                self.send_plain(int(q.get("status", ["503"])[0]), "come back later\n", {"Retry-After": value})
            else:
                self.serve_file(q)
        elif top == "truncated":
            n = bump("truncated/" + segs[1])
            if n == 1:
                size = int(q.get("size", ["100000"])[0])
                cut = int(q.get("cut", [str(size // 2)])[0])
                self.send_response(200)
                self.send_header("ETag", f'"f-{size}"')
                self.send_header("Last-Modified", LAST_MODIFIED)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self.write_content(0, cut)
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_WR)
            else:
                self.serve_file(q, default_size=100000)
        elif top == "stallonce":
            n = bump("stallonce/" + segs[1])
            if n == 1:
                size = int(q.get("size", ["100000"])[0])
                after = int(q.get("after", [str(size // 2)])[0])
                self.send_response(200)
                self.send_header("ETag", f'"f-{size}"')
                self.send_header("Last-Modified", LAST_MODIFIED)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self.write_content(0, after)
                self.wfile.flush()
                time.sleep(float(q.get("delay", ["30"])[0]))
                self.close_connection = True
            else:
                self.serve_file(q, default_size=100000)
        elif top == "slow":
            time.sleep(float(q.get("delay", ["5"])[0]))
            self.serve_file({})
        elif top == "stall":
            size = int(q.get("size", ["100000"])[0])
            after = int(q.get("after", ["1000"])[0])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.write_content(0, after)
            self.wfile.flush()
            time.sleep(float(q.get("delay", ["5"])[0]))
            self.write_content(after, size - after)
        elif top == "endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            pos = 0
            while True:
                for piece in pieces(pos, 1 << 20):
                    self.wfile.write(piece)
                pos += 1 << 20
        elif top == "redirect":
            n = int(segs[1])
            if n > 0:
                self.send_plain(302, "moved\n", {"Location": f"/redirect/{n - 1}"})
            else:
                self.serve_file(q)
        elif top == "loop":
            other = "b" if segs[1] == "a" else "a"
            self.send_plain(302, "moved\n", {"Location": f"/loop/{other}"})
        else:
            self.send_plain(404, "unknown route\n")


def main():
    global log_file
    # A parent that blocks SIGTERM (test runners do) passes the mask on; make kill(1) work.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    log_file = open(sys.argv[1], "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) >= 4:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
