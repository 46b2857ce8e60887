"""What the fault tests share: clients for the project role and the TLS hub that
read until the proxy closes, backends that die or stream on purpose and record
when their connection ended, a role under a low ``ulimit -n``, and the CPU
time of a process.

Every wait has a deadline; every process and thread here is started by the
test and stopped by it.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from tests.support.backends import _Server, read_head
from tests.support.procs import TWISTD, ProxyProcess, child_env, free_port, wait_for_port
from tests.support.wire import Wire

LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def reset_close(sock: socket.socket) -> None:
    """Close with a TCP reset instead of a FIN (a process killed, a cable pulled)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    except OSError:
        pass
    sock.close()


# ------------------------------------------------------------------ clients


def plain_client(port: int, timeout: float = 5.0) -> Wire:
    return Wire(socket.create_connection(("127.0.0.1", port), timeout=timeout), timeout)


def tls_client(port: int, context: ssl.SSLContext, timeout: float = 5.0) -> Wire:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return Wire(context.wrap_socket(raw, server_hostname="localhost"), timeout)


def read_until_closed(wire: Wire, timeout: float) -> tuple[bytes, bool]:
    """Everything until the peer closes (EOF, reset, TLS close or ragged EOF) or ``timeout``."""
    deadline = time.monotonic() + timeout
    data = bytearray(wire.buf)
    wire.buf.clear()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(data), False
        wire.sock.settimeout(left)
        try:
            chunk = wire.sock.recv(1 << 20)
        except (socket.timeout, TimeoutError):
            return bytes(data), False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk


def second_request_answer(wire: Wire, raw: bytes, timeout: float = 2.0) -> bytes:
    """Send another request on a connection the proxy should have closed: what comes back.

    b"" when the connection is gone (the write fails, or the read sees EOF/reset)."""
    try:
        wire.sock.sendall(raw)
    except (OSError, ssl.SSLError):
        return b""
    data, _ = read_until_closed(wire, timeout)
    return data


def socket_fds(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


# ------------------------------------------------------------------ backends


@dataclass
class Ending:
    """How and when one backend connection ended."""

    received: int = 0  # body bytes read (uploads)
    sent: int = 0  # body bytes written (downloads)
    how: str = ""  # "eof", "reset" or "error"
    at: float = 0.0  # time.monotonic() when the end was seen
    started: threading.Event = field(default_factory=threading.Event)  # the head arrived
    ended: threading.Event = field(default_factory=threading.Event)


class WatchfulBackend(_Server):
    """A backend that notices at once when the proxy drops its connection.

    ``mode="download"``: answers every request head with a huge Content-Length
    body and writes it for as long as the connection lives (non-blocking, so a
    full buffer never hides a close).  ``mode="upload"``: reads the request body
    and never answers.  Either way it records in ``endings`` when the connection
    ended and how: EOF (the proxy closed) or reset (the proxy aborted).
    """

    PIECE = 64 * 1024

    def __init__(self, mode: str) -> None:
        assert mode in ("download", "upload")
        self.mode = mode
        self.endings: dict[int, Ending] = {}
        self.first = threading.Event()
        super().__init__()

    def handle(self, conn: socket.socket, number: int) -> None:
        e = self.endings[number] = Ending()
        self.first.set()
        try:
            head, extra = read_head(conn)
            if not head.endswith(b"\r\n\r\n"):
                e.how, e.at = "eof", time.monotonic()
                return
            e.received = len(extra)
            e.started.set()
            conn.setblocking(False)
            pending = b""
            if self.mode == "download":
                pending = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % (
                    1 << 40)
            piece = b"\xa5" * self.PIECE
            while True:
                want_write = self.mode == "download"
                readable, writable, _ = select.select([conn], [conn] if want_write else [], [], 0.05)
                if readable:
                    data = conn.recv(1 << 20)
                    if not data:
                        e.how = "eof"
                        return
                    e.received += len(data)
                if writable:
                    if not pending:
                        pending = piece
                    n = conn.send(pending)
                    e.sent += n
                    pending = pending[n:]
        except (ConnectionResetError, BrokenPipeError):
            e.how = "reset"
        except OSError:
            e.how = "error"
        finally:
            if not e.at:
                e.at = time.monotonic()
            e.started.set()
            e.ended.set()

    def connection(self, number: int = 1, timeout: float = 5.0) -> Ending:
        assert self.first.wait(timeout), "the proxy never connected to the backend"
        return self.endings[number]


class DyingBackend(_Server):
    """Answers the head of a response (and maybe part of its body), then dies.

    ``framing``: ``length`` (Content-Length 1 MB, 50 000 bytes sent), ``head``
    (Content-Length 1 MB, no body byte sent), ``chunked`` (two whole chunks,
    then no last-chunk).  ``death``: ``fin`` (close) or ``reset`` (RST).
    """

    BODY = b"0123456789abcdef" * 3125  # 50 000 bytes

    def __init__(self, framing: str, death: str, pause: float = 0.3) -> None:
        self.framing = framing
        self.death = death
        self.pause = pause
        self.requests = 0
        super().__init__()

    def handle(self, conn: socket.socket, number: int) -> None:
        head, _ = read_head(conn)
        if not head.endswith(b"\r\n\r\n"):
            return
        self.requests += 1
        if self.framing == "length":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + self.BODY)
        elif self.framing == "head":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"%x\r\n%s\r\n5\r\nhello\r\n" % (len(self.BODY), self.BODY))
        time.sleep(self.pause)  # everything sent so far is on its way through every hop
        if self.death == "reset":
            reset_close(conn)
        else:
            conn.close()


# ------------------------------------------------------------------ a role under ulimit -n


class LimitedProxy(ProxyProcess):
    """``ProxyProcess`` started as ``bash -c 'ulimit -n N; exec twistd …'`` (bash execs
    twistd, so ``pid`` is the proxy's own)."""

    def __init__(self, role: str, args: list[str] | tuple = (), nofile: int = 64) -> None:
        self.port = free_port()
        self.logfile = tempfile.NamedTemporaryFile(prefix="cocalcproxy-ulimit-", suffix=".log", delete=False)
        cmd = [TWISTD, "-n", "--pidfile=", "cocalcproxy", role, "--listen", f"tcp:{self.port}:interface=127.0.0.1",
               *args]
        self.cmd = ["bash", "-c", f'ulimit -n {int(nofile)} && exec "$@"', "bash", *cmd]
        self.proc = subprocess.Popen(self.cmd, stdout=self.logfile, stderr=subprocess.STDOUT, env=child_env(),
                                     cwd=tempfile.gettempdir(), start_new_session=True)
        try:
            wait_for_port(self.port, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"proxy did not start: {self.cmd}\n{self.log_text()}")

    def nofile_limit(self) -> int:
        with open(f"/proc/{self.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        raise RuntimeError("no open-files limit")


# ------------------------------------------------------------------ logs

def log_entries(text: str) -> list[str]:
    """A twistd log split into entries (a line starting with a timestamp, and its continuation lines)."""
    entries: list[str] = []
    for line in text.splitlines():
        if entries and not (line[:4].isdigit() and line[4:5] == "-"):
            entries[-1] += "\n" + line
        else:
            entries.append(line)
    return entries


def unexpected_tracebacks(text: str) -> list[str]:
    """Log entries with a traceback (a failure the proxy did not handle)."""
    return [e for e in log_entries(text) if "Traceback" in e]
