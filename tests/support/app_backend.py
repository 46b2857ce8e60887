"""A web app inside the "project" for the chain tests (stdlib ``http.server``, a thread).

    GET  /headers        → the request line and headers it received, as JSON
    GET  /bytes?n=N      → N bytes of a known pattern (streamed, HTTP/1.1 keep-alive)
    PUT  /upload         → reads the whole body; answers its length and SHA-256
    anything else        → 200 "hello from the app"

Every request's headers are kept in ``seen`` so a test can check exactly what
reached the app (credentials must not).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .sinks import pattern


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _record(self) -> None:
        self.server.seen.append({"method": self.command, "path": self.path, "headers": list(self.headers.items())})

    def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._record()
        url = urlsplit(self.path)
        if url.path.endswith("/headers"):
            doc = {"path": self.path, "headers": list(self.headers.items())}
            self._send(200, json.dumps(doc).encode(), "application/json")
        elif url.path.endswith("/bytes"):
            n = int(parse_qs(url.query).get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = pattern(1 << 20, seed=3)
            sent = 0
            while sent < n:
                piece = block[: min(len(block), n - sent)]
                self.wfile.write(piece)
                sent += len(piece)
        else:
            self._send(200, b"hello from the app")

    def do_PUT(self) -> None:
        self._record()
        remaining = int(self.headers.get("Content-Length", "0"))
        digest = hashlib.sha256()
        total = 0
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
            remaining -= len(chunk)
        self._send(200, json.dumps({"length": total, "sha256": digest.hexdigest()}).encode(), "application/json")

    do_POST = do_PUT


class AppBackend:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.seen = []
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def seen(self) -> list[dict]:
        return self.server.seen

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def big_pattern_sha(n: int) -> str:
    block = pattern(1 << 20, seed=3)
    digest = hashlib.sha256()
    sent = 0
    while sent < n:
        piece = block[: min(len(block), n - sent)]
        digest.update(piece)
        sent += len(piece)
    return digest.hexdigest()
