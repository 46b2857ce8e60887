"""Exact-bytes exchanges with the proxy, for tests about errors and framing.

``client.request`` parses with h11, which refuses some of the answers these
tests provoke on purpose and hides whether the connection closed.  Here the
first response is parsed by hand from the raw bytes, and the answer says
whether the proxy closed the connection after it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


@dataclass
class RawAnswer:
    raw: bytes  # everything received
    status_line: bytes
    status: int
    headers: list[tuple[bytes, bytes]]  # (lower-cased name, value), in order
    body: bytes
    closed: bool  # the proxy closed the connection (EOF or reset) after the response

    def header(self, name: bytes) -> bytes | None:
        values = self.header_all(name)
        return values[-1] if values else None

    def header_all(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name.lower()]


def parse_first_response(raw: bytes, closed: bool, head_only: bool = False) -> RawAnswer:
    """Split the first response in ``raw`` (Content-Length framed, as the proxy's own answers are)."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise AssertionError(f"no complete response head in {raw[:300]!r}")
    lines = raw[:end].split(b"\r\n")
    status_line = lines[0]
    parts = status_line.split(b" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.lower(), value.strip(b" \t")))
    rest = raw[end + 4 :]
    lengths = [v for k, v in headers if k == b"content-length"]
    if head_only:
        body = b""
    elif lengths:
        body = rest[: int(lengths[-1])]
    else:
        body = rest
    return RawAnswer(raw, status_line, int(parts[1]), headers, body, closed)


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the peer sends until it closes, or until ``timeout``: (bytes, closed)."""
    deadline = time.monotonic() + timeout
    out = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(out), False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return b"".join(out), True
        except socket.timeout:
            return b"".join(out), False
        if not data:
            return b"".join(out), True
        out.append(data)


def read_response_bytes(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Bytes up to the end of one Content-Length framed response, or until close.

    Returns (bytes, closed) where ``closed`` is only known True when the peer
    closed while we were reading."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].lower()
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                length = int(head[i + 17 :].split(b"\r\n", 1)[0])
                if len(buf) >= end + 4 + length:
                    return buf, False
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no complete response within {timeout}s; got {buf[:300]!r}")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return buf, True
        if not data:
            return buf, True
        buf += data


def send_and_read(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send ``data`` on a new connection; (everything received, closed by the proxy)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def exchange(port: int, data: bytes, timeout: float = 5.0, head_only: bool = False) -> RawAnswer:
    """Send ``data`` on a new connection and read until the proxy closes it (or
    ``timeout``, then ``closed`` is False)."""
    raw, closed = send_and_read(port, data, timeout)
    return parse_first_response(raw, closed, head_only)


def exchange_keepalive(port: int, data: bytes, timeout: float = 5.0) -> RawAnswer:
    """Send ``data``, read one response, then check for ``0.3`` s whether the
    connection was closed after it (``closed``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        raw, closed = read_response_bytes(sock, timeout)
        if not closed:
            more, closed = read_until_closed(sock, 0.3)
            raw += more
    return parse_first_response(raw, closed)


def http_get(path: str, host: bytes = b"proxy.test", headers: list[tuple[bytes, bytes]] | tuple = (),
             method: bytes = b"GET", version: bytes = b"HTTP/1.1", close: bool = True) -> bytes:
    """The bytes of a simple request (``Connection: close`` unless ``close`` is False)."""
    target = path.encode("latin-1") if isinstance(path, str) else path
    lines = [method + b" " + target + b" " + version, b"Host: " + host]
    lines += [k + b": " + v for k, v in headers]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"
