"""Byte-exact HTTP/1.1 message reading over a blocking socket, for tests.

h11 is the independent parser for *meaning*; this module is for tests that must
see the *bytes*: raw heads, raw chunk framing with trailers, request-targets
with bytes h11 refuses (≥ 0x80).  It never normalises anything it returns.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass


class Wire:
    """A blocking socket with a read buffer: read lines, exact counts, to EOF."""

    def __init__(self, sock: socket.socket, timeout: float | None = 10.0) -> None:
        self.sock = sock
        if timeout is not None:
            sock.settimeout(timeout)
        self.buf = bytearray()
        self.eof = False

    def fill(self, size: int = 1 << 20) -> bool:
        """Read once more from the socket; False at EOF (or reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, sep: bytes, limit: int = 1 << 20) -> bytes:
        """Bytes up to and including ``sep``; EOFError if the peer closes first."""
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                end = i + len(sep)
                out = bytes(self.buf[:end])
                del self.buf[:end]
                return out
            if len(self.buf) > limit:
                raise ValueError(f"no {sep!r} within {limit} bytes")
            start = max(0, len(self.buf) - len(sep) + 1)
            if not self.fill():
                raise EOFError(f"EOF before {sep!r}; have {bytes(self.buf[:200])!r}")

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill(max(65536, n - len(self.buf))):
                raise EOFError(f"EOF after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self) -> bytes:
        """Whatever is buffered, or one ``recv`` (b"" at EOF)."""
        if not self.buf:
            self.fill()
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_to_eof(self) -> bytes:
        while self.fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def closed_within(self, timeout: float) -> bool:
        """True if the peer closes (EOF or reset) within ``timeout``; data read meanwhile
        stays buffered."""
        self.sock.settimeout(timeout)
        try:
            while self.fill():
                pass
            return True
        except (socket.timeout, TimeoutError):
            return False


@dataclass
class Head:
    """A message head as raw bytes plus a light parse (names lower-cased)."""

    raw: bytes
    start_line: bytes
    headers: list[tuple[bytes, bytes]]

    @classmethod
    def parse(cls, raw: bytes) -> "Head":
        lines = raw[:-4].split(b"\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        return cls(raw, lines[0], headers)

    def get(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return values[-1] if values else None

    def get_all(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name.lower()]

    @property
    def target(self) -> bytes:
        return self.start_line.split(b" ")[1]

    @property
    def version(self) -> bytes:
        """``HTTP/1.x`` of a request line or a status line."""
        parts = self.start_line.split(b" ")
        return parts[0] if parts[0].startswith(b"HTTP/") else parts[-1]

    @property
    def status(self) -> int:
        return int(self.start_line.split(b" ")[1])

    @property
    def chunked(self) -> bool:
        te = self.get(b"transfer-encoding")
        return te is not None and te.lower().endswith(b"chunked")

    @property
    def content_length(self) -> int | None:
        cl = self.get(b"content-length")
        return int(cl) if cl is not None else None


def read_head(wire: Wire) -> Head:
    return Head.parse(wire.read_until(b"\r\n\r\n"))


def read_chunked_raw(wire: Wire) -> bytes:
    """The raw chunked body: every chunk-size line, chunk, last-chunk and trailer
    section, exactly as sent."""
    out = []
    while True:
        size_line = wire.read_until(b"\r\n")
        out.append(size_line)
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:
                line = wire.read_until(b"\r\n")
                out.append(line)
                if line == b"\r\n":
                    return b"".join(out)
        out.append(wire.read_exact(size + 2))


def iter_chunks(wire: Wire):
    """Yield each chunk's data as it arrives (for streaming tests); stops at the last chunk."""
    while True:
        size = int(wire.read_until(b"\r\n").split(b";")[0].strip(), 16)
        if size == 0:
            while wire.read_until(b"\r\n") != b"\r\n":
                pass  # trailer lines
            return
        data = wire.read_exact(size + 2)[:-2]
        yield data


def decode_chunked(raw: bytes) -> tuple[bytes, bytes]:
    """(body, raw trailer section without the final CRLF) of a raw chunked body."""
    body = []
    pos = 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol].split(b";")[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            return b"".join(body), raw[pos:-2]
        body.append(raw[pos : pos + size])
        pos += size + 2


def encode_chunked(parts: list[bytes], trailers: bytes = b"") -> bytes:
    """Chunk framing for ``parts``; ``trailers`` is raw ``Name: value\\r\\n`` lines."""
    out = [b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p]
    out.append(b"0\r\n" + trailers + b"\r\n")
    return b"".join(out)


def read_request_body(wire: Wire, head: Head) -> bytes:
    """A request's raw body by its framing (chunk framing kept as sent)."""
    if head.chunked:
        return read_chunked_raw(wire)
    n = head.content_length
    return wire.read_exact(n) if n else b""


def read_response_body(wire: Wire, head: Head, method: bytes = b"GET") -> bytes:
    """A response's raw body by RFC 9112 §6.3 framing; close-delimited reads to EOF."""
    status = head.status
    if method == b"HEAD" or status < 200 or status in (204, 304):
        return b""
    if head.chunked:
        return read_chunked_raw(wire)
    n = head.content_length
    if n is not None:
        return wire.read_exact(n)
    return wire.read_to_eof()


def read_response(wire: Wire, method: bytes = b"GET") -> tuple[list[Head], Head, bytes]:
    """(interim 1xx heads, final head, raw body) of the next response."""
    interim = []
    while True:
        head = read_head(wire)
        if 100 <= head.status < 200 and head.status != 101:
            interim.append(head)
            continue
        return interim, head, read_response_body(wire, head, method)


def connect(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> Wire:
    return Wire(socket.create_connection((host, port), timeout=timeout), timeout)
