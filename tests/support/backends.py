"""Backends for integration tests: small real servers on 127.0.0.1, each in a thread.

- ``RecordingBackend`` parses requests with h11 (an independent HTTP parser),
  keeps every request's raw bytes exactly as received, and answers with
  whatever its ``respond(request)`` returns.
- ``ScriptedBackend`` hands each accepted socket to a function, for backends that
  misbehave on purpose (close mid-body, answer HTTP/1.0, stream slowly…).
- ``HttpServerProcess`` runs ``python -m http.server`` as a real child process.

Every backend stops its threads and closes its sockets in ``close()``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import h11

from .procs import bind_loopback, free_port, wait_for_port


@dataclass
class Recorded:
    """One request as the backend saw it."""

    method: bytes
    target: bytes
    http_version: bytes
    headers: list[tuple[bytes, bytes]]  # (lower-cased name, value) as h11 reports them
    raw_head: bytes  # the request head exactly as received
    body: bytes = b""
    connection: int = 0  # which accepted connection carried it (1-based)

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return values[-1] if values else None

    def header_all(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name.lower()]


def simple_response(status: int = 200, body: bytes = b"ok", headers: list[tuple[bytes, bytes]] | None = None,
                    version: bytes = b"HTTP/1.1") -> bytes:
    lines = [b"%s %d X" % (version, status)]
    hdrs = headers if headers is not None else [(b"Content-Type", b"text/plain")]
    names = {k.lower() for k, _ in hdrs}
    for k, v in hdrs:
        lines.append(k + b": " + v)
    if b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Server:
    def __init__(self, host: str = "127.0.0.1", family: int = socket.AF_INET) -> None:
        self.sock = bind_loopback(host, family)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.lock = threading.Lock()
        self.closing = False
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self) -> None:
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                number = self.accepted
                self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn, number), daemon=True).start()

    def _run(self, conn: socket.socket, number: int) -> None:
        try:
            self.handle(conn, number)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle(self, conn: socket.socket, number: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        self.closing = True
        try:
            # shutdown first: a close() alone leaves the port listening while the
            # accept thread is still blocked in accept() on it
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    c.close()
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordingBackend(_Server):
    """Keep-alive HTTP/1.1 backend that records requests and answers via ``respond``."""

    def __init__(self, respond=None, host: str = "127.0.0.1", family: int = socket.AF_INET) -> None:
        self.respond = respond or (lambda req: simple_response(200, b"ok"))
        self.requests: list[Recorded] = []
        self.raw: dict[int, bytes] = {}
        self.event = threading.Condition()
        super().__init__(host, family)

    def handle(self, conn: socket.socket, number: int) -> None:
        h = h11.Connection(h11.SERVER)
        buf = b""
        current: Recorded | None = None
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                data = conn.recv(65536)
                with self.lock:
                    self.raw[number] = self.raw.get(number, b"") + data
                buf += data
                h.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                end = buf.find(b"\r\n\r\n")
                raw_head = buf[: end + 4]
                buf = buf[end + 4 :]
                current = Recorded(event.method, event.target, event.http_version,
                                   [(k, v) for k, v in event.headers.raw_items()], raw_head, connection=number)
                current.headers = [(k.lower(), v) for k, v in current.headers]
            elif isinstance(event, h11.Data):
                current.body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                buf = b""
                with self.event:
                    self.requests.append(current)
                    self.event.notify_all()
                reply = self.respond(current)
                if reply is None:
                    return
                conn.sendall(reply)
                keep = current.header(b"connection") != b"close" and current.http_version == b"1.1"
                if not keep or b"connection: close" in reply.split(b"\r\n\r\n", 1)[0].lower():
                    conn.shutdown(socket.SHUT_WR)
                    return
                # h11 tracks the server side too: advance it with a stand-in response
                # (its bytes are discarded) so pipelined bytes it holds are kept.
                h.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                h.send(h11.EndOfMessage())
                h.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return

    def wait_requests(self, n: int, timeout: float = 10.0) -> list[Recorded]:
        with self.event:
            self.event.wait_for(lambda: len(self.requests) >= n, timeout)
        return list(self.requests)


class ScriptedBackend(_Server):
    """Each accepted connection runs ``script(conn, number)`` in its own thread."""

    def __init__(self, script, host: str = "127.0.0.1", family: int = socket.AF_INET) -> None:
        self.script = script
        super().__init__(host, family)

    def handle(self, conn: socket.socket, number: int) -> None:
        self.script(conn, number)


def read_head(conn: socket.socket, limit: int = 1 << 20) -> tuple[bytes, bytes]:
    """Read from ``conn`` up to the end of a request head; returns (head, extra bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return buf, b""
        buf += data
        if len(buf) > limit:
            raise ValueError("head too large")
    end = buf.index(b"\r\n\r\n") + 4
    return buf[:end], buf[end:]


@dataclass
class HttpServerProcess:
    """``python -m http.server PORT --bind ADDR --directory DIR`` as a child process."""

    directory: str
    bind: str = "127.0.0.1"
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", self.bind, "--directory", self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for_port(self.port, host=self.bind, proc=self.proc)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
