"""Raw stream targets that account for every byte, for the lossless-close tests.

A ``StreamTarget`` listens on TCP (127.0.0.1) or a unix socket and handles each
connection in a thread with one of these behaviours:

- ``echo``: write back what it reads, until EOF;
- ``read``: only read, until EOF;
- ``slow``: read in small pieces with a pause between them (pushes back);
- ``send``: write ``send_bytes`` bytes, half-close (FIN), then read until EOF.

With ``http_upgrade`` it first reads an HTTP request head and answers
``101 Switching Protocols`` (a WebSocket server as the HTTP tunnel sees it).

For each connection it records how many bytes arrived, their SHA-256, and how
the stream ended: ``eof`` (a clean FIN) or ``reset`` (the peer's kernel sent
RST — what a proxy closing a socket with unread input causes).
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field

from .procs import bind_loopback
from .waiting import wait_until

UPGRADE_ANSWER = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that are not all alike (a lost or reordered piece changes the hash)."""
    block = hashlib.sha256(b"%d" % seed).digest() * 2048  # 64 KiB
    reps, rest = divmod(n, len(block))
    return block * reps + block[:rest]


@dataclass
class Received:
    nbytes: int = 0
    digest: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    ended: str = ""  # "eof" or "reset" once the stream is over
    done: threading.Event = field(default_factory=threading.Event)

    def sha(self) -> str:
        return self.digest.hexdigest()


class StreamTarget:
    def __init__(self, mode: str, unix: bool = False, http_upgrade: bool = False, send_bytes: int = 0,
                 slow_piece: int = 4096, slow_pause: float = 0.001) -> None:
        self.mode = mode
        self.http_upgrade = http_upgrade
        self.send_bytes = send_bytes
        self.slow_piece = slow_piece
        self.slow_pause = slow_pause
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.dir = None
        if unix:
            self.dir = tempfile.mkdtemp(prefix="sink-")
            self.path = os.path.join(self.dir, "target.sock")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(self.path)
            self.sock.listen(16)
            self.address = f"unix:{self.path}"
        else:
            self.sock = bind_loopback("127.0.0.1", socket.AF_INET)
            self.port = self.sock.getsockname()[1]
            self.address = f"tcp:127.0.0.1:{self.port}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            rec = Received()
            with self.lock:
                self.conns.append(conn)
                self.received.append(rec)
            threading.Thread(target=self._run, args=(conn, rec), daemon=True).start()

    def _run(self, conn: socket.socket, rec: Received) -> None:
        try:
            if self.http_upgrade:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        rec.ended = "eof-before-upgrade"
                        return
                    head += data
                head, _, rest = head.partition(b"\r\n\r\n")
                conn.sendall(UPGRADE_ANSWER)
                if rest:
                    self._account(conn, rec, rest)
            if self.mode == "send":
                conn.sendall(pattern(self.send_bytes, seed=1))
                conn.shutdown(socket.SHUT_WR)
            self._read_all(conn, rec)
        except OSError:
            rec.ended = rec.ended or "error"
        finally:
            rec.done.set()
            try:
                conn.close()
            except OSError:
                pass

    def _account(self, conn: socket.socket, rec: Received, data: bytes) -> None:
        rec.nbytes += len(data)
        rec.digest.update(data)
        if self.mode == "echo":
            conn.sendall(data)

    def _read_all(self, conn: socket.socket, rec: Received) -> None:
        piece = self.slow_piece if self.mode == "slow" else 256 * 1024
        while True:
            try:
                data = conn.recv(piece)
            except ConnectionResetError:
                rec.ended = "reset"
                return
            if not data:
                rec.ended = "eof"
                return
            self._account(conn, rec, data)
            if self.mode == "slow":
                time.sleep(self.slow_pause)

    def wait(self, index: int = 0, timeout: float = 30.0) -> Received:
        deadline = time.monotonic() + timeout

        def connected() -> bool:
            with self.lock:
                return len(self.received) > index

        assert wait_until(connected, timeout, 0.01), "the target was never connected"
        with self.lock:
            rec = self.received[index]
        assert rec.done.wait(max(0.0, deadline - time.monotonic())), "the target's stream did not end in time"
        return rec

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
        if self.dir:
            try:
                os.unlink(self.path)
                os.rmdir(self.dir)
            except OSError:
                pass
