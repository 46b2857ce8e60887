"""What the soak's traffic reaches at the end of the chain, each in threads of the test process.

- ``SoakApp`` (stdlib ``http.server``, HTTP/1.1 keep-alive):

      GET|HEAD /get?n=N&seed=S        → N bytes of ``stream(N, S)``, Content-Length framed
      GET      /dl?n=N&seed=S[&chunked=1] → the same, streamed (Content-Length or chunked)
      PUT|POST /up                     → reads the body (Content-Length or chunked) and answers
                                         ``{"length": …, "sha256": …}``
      anything with ``/miss/`` in it   → counted as a *leak* (an auth miss that reached the app)

  It counts what it served per kind, so the test can check that every 200 the
  client saw was one request the app answered — and that no refused request
  ever got here.
- ``TcpEcho``: a raw TCP echo, the bridge role's target.

``stream(n, seed)`` is deterministic and never repeats a 64 KiB block (each
block starts with its index), so a lost, doubled or reordered block changes
the SHA-256 the client computes as it reads.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.support.backends import ScriptedBackend

BLOCK = 64 * 1024


def _base(seed: int) -> bytes:
    return hashlib.sha256(b"soak-%d" % seed).digest() * (BLOCK // 32)


def stream(n: int, seed: int):
    """The ``n`` bytes of pattern ``seed``, in blocks of at most 64 KiB."""
    base = _base(seed)
    i = 0
    sent = 0
    while sent < n:
        block = struct.pack(">Q", i) + base[8:]
        piece = block[: min(BLOCK, n - sent)]
        yield piece
        sent += len(piece)
        i += 1


def stream_sha256(n: int, seed: int) -> str:
    digest = hashlib.sha256()
    for piece in stream(n, seed):
        digest.update(piece)
    return digest.hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args) -> None:
        pass

    def _count(self, kind: str) -> None:
        with self.server.lock:
            self.server.counts[kind] += 1

    def _leak(self) -> bool:
        if "/miss/" not in self.path:
            return False
        self._count("leak")
        with self.server.lock:
            if len(self.server.leaks) < 20:
                self.server.leaks.append(f"{self.command} {self.path}")
        self._reply(200, b"an auth miss reached the app")
        return True

    def _reply(self, status: int, body: bytes, ctype: str = "text/plain", head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _query(self) -> tuple[str, int, int, bool]:
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        return url.path, int(q.get("n", ["0"])[0]), int(q.get("seed", ["0"])[0]), q.get("chunked") == ["1"]

    def do_GET(self, head: bool = False) -> None:
        if self._leak():
            return
        path, n, seed, chunked = self._query()
        if path.endswith("/get"):
            self._count("head" if head else "get")
            self._reply(200, b"".join(stream(n, seed)), "application/octet-stream", head=head)
        elif path.endswith("/dl"):
            self._count("download")
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding" if chunked else "Content-Length", "chunked" if chunked else str(n))
            self.end_headers()
            for piece in stream(n, seed):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        else:
            self._count("other")
            self._reply(404, b"no such soak path")

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def _body(self):
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        raise ConnectionError("EOF inside a chunk")
                    left -= len(chunk)
                    yield chunk
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    raise ConnectionError("EOF inside the body")
                left -= len(chunk)
                yield chunk

    def do_PUT(self) -> None:
        digest = hashlib.sha256()
        total = 0
        for chunk in self._body():
            digest.update(chunk)
            total += len(chunk)
        if self._leak():
            return
        self._count("upload")
        self._reply(200, json.dumps({"length": total, "sha256": digest.hexdigest()}).encode(), "application/json")

    do_POST = do_PUT


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class SoakApp:
    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.lock = threading.Lock()
        self.server.counts = Counter()
        self.server.leaks = []
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def counts(self) -> Counter:
        with self.server.lock:
            return Counter(self.server.counts)

    @property
    def leaks(self) -> list[str]:
        with self.server.lock:
            return list(self.server.leaks)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _echo(conn: socket.socket, number: int) -> None:
    while True:
        data = conn.recv(256 * 1024)
        if not data:
            return
        conn.sendall(data)


class TcpEcho(ScriptedBackend):
    """Raw TCP echo until EOF (the bridge's target)."""

    def __init__(self) -> None:
        super().__init__(_echo)

    def _run(self, conn: socket.socket, number: int) -> None:
        super()._run(conn, number)
        with self.lock:  # forget closed connections: a 30-minute soak makes thousands
            try:
                self.conns.remove(conn)
            except ValueError:
                pass
