"""The tests' one raw HTTP/1.1 client: exact bytes out, exact bytes in, over a
blocking socket.

``Wire`` wraps a connected socket (a client connection from ``connect``, or a
connection a test backend accepted) with a read buffer.  Three ways to read
what comes back, for three kinds of test:

- meaning — ``Wire.read_answer`` parses the next response with h11, the
  independent parser (``request``/``get`` do it on a new connection);
- bytes — ``read_head``/``read_response`` and the chunk helpers return heads,
  chunk framing and trailers exactly as sent, never normalised (request-targets
  h11 refuses, raw chunked bodies);
- errors — ``exchange``/``exchange_keepalive``/``parse_first_response`` split the
  first response by hand (the proxy's own answers are Content-Length framed),
  for answers h11 refuses on purpose, and say whether the proxy closed the
  connection after it (``Answer.closed``).

Every wait has a deadline: a missing answer fails the test, it never hangs it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import h11


# ------------------------------------------------------------------ answers


@dataclass
class Answer:
    """One response.  ``headers`` are (lower-cased name, value), in order.

    ``raw``, ``status_line`` and ``closed`` are known only when the response was
    split by hand (``exchange``, ``parse_first_response``); for h11-parsed ones
    (``request``, ``get``, ``Wire.read_answer``) they are None, so a test cannot
    look for bytes in an answer that never kept them.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    http_version: bytes = b"1.1"
    informational: list = field(default_factory=list)  # 1xx responses before this one (h11 events)
    raw: bytes | None = None  # everything received
    status_line: bytes | None = None
    closed: bool | None = None  # the proxy closed the connection (EOF or reset) after the response

    def header(self, name: bytes) -> bytes | None:
        values = self.header_all(name)
        return values[-1] if values else None

    def header_all(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name.lower()]


def parse_first_response(raw: bytes, closed: bool, head_only: bool = False) -> Answer:
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
    version = parts[0].partition(b"/")[2]
    return Answer(int(parts[1]), headers, body, version, raw=raw, status_line=status_line, closed=closed)


# ------------------------------------------------------------------ the connection


class Wire:
    """A blocking socket with a read buffer: send bytes, read lines, exact counts,
    to EOF, or whole responses."""

    def __init__(self, sock: socket.socket, timeout: float | None = 10.0) -> None:
        self.sock = sock
        if timeout is not None:
            sock.settimeout(timeout)
        self.timeout = sock.gettimeout()  # for each recv, unless a method takes its own deadline
        self.buf = bytearray()
        self.eof = False

    # ------------------------------------------------------------ writing
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    # ------------------------------------------------------------ reading bytes
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
        """Everything until the peer closes (EOF or reset)."""
        while self.fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def _fill_until_eof(self, timeout: float) -> bool:
        """Read until EOF (True) or until ``timeout`` has passed (False)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                if not self.fill():
                    return True
        except (socket.timeout, TimeoutError):
            return False
        finally:
            if not self.eof:
                self.sock.settimeout(self.timeout)

    def closed_within(self, timeout: float) -> bool:
        """True if the peer closes (EOF or reset) within ``timeout``; data read
        meanwhile stays buffered."""
        return self._fill_until_eof(timeout)

    def read_until_closed(self, timeout: float) -> tuple[bytes, bool]:
        """Everything the peer sends until it closes, or until ``timeout``: (bytes, closed)."""
        closed = self._fill_until_eof(timeout)
        out = bytes(self.buf)
        self.buf.clear()
        return out, closed

    def read_framed(self, timeout: float) -> tuple[bytes, bool]:
        """Bytes up to the end of one Content-Length framed response, or until the
        peer closes: (bytes, closed); ``closed`` is only known True when the peer
        closed while we were reading.  AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = bytes(self.buf[:end]).lower()
                    i = head.find(b"\r\ncontent-length:")
                    if i >= 0:
                        length = int(head[i + 17 :].split(b"\r\n", 1)[0])
                        if len(self.buf) >= end + 4 + length:
                            out = bytes(self.buf[: end + 4 + length])
                            del self.buf[: end + 4 + length]
                            return out, False
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no complete response within {timeout}s; got {bytes(self.buf[:300])!r}")
                self.sock.settimeout(left)
                try:
                    more = self.fill()
                except (socket.timeout, TimeoutError):
                    raise AssertionError(
                        f"no complete response within {timeout}s; got {bytes(self.buf[:300])!r}") from None
                if not more:
                    out = bytes(self.buf)
                    self.buf.clear()
                    return out, True
        finally:
            if not self.eof:
                self.sock.settimeout(self.timeout)

    # ------------------------------------------------------------ reading meaning
    def read_answer(self, method: bytes = b"GET") -> Answer:
        """The next complete response, parsed by h11 (1xx collected into
        ``informational``; a 101 returns at once, what follows it stays buffered)."""
        h = h11.Connection(h11.CLIENT)
        h.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        h.send(h11.EndOfMessage())
        info = []
        resp = None
        body = b""
        while True:
            ev = h.next_event()
            if ev is h11.NEED_DATA:
                h.receive_data(self.read_some())  # b"" at EOF: h11 sees the close
                continue
            if isinstance(ev, h11.InformationalResponse):
                info.append(ev)
                if ev.status_code == 101:
                    self.buf[:0] = bytes(h.trailing_data[0])
                    return Answer(101, [(k.lower(), v) for k, v in ev.headers.raw_items()], b"", ev.http_version, info)
            elif isinstance(ev, h11.Response):
                resp = ev
            elif isinstance(ev, h11.Data):
                body += bytes(ev.data)
            elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                self.buf[:0] = bytes(h.trailing_data[0])
                return Answer(resp.status_code, [(k.lower(), v) for k, v in resp.headers.raw_items()], body,
                              resp.http_version, info)

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> Wire:
    return Wire(socket.create_connection((host, port), timeout=timeout), timeout)


# ------------------------------------------------------------------ one request, one connection


def request(port: int, raw: bytes, method: bytes = b"GET", timeout: float = 10.0) -> Answer:
    """Send one raw request on a new connection and read one response (h11)."""
    with connect(port, timeout=timeout) as w:
        w.send(raw)
        return w.read_answer(method)


def get(port: int, path: str, headers: dict | None = None, host: str = "proxy.test") -> Answer:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return request(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def send_and_read(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send ``data`` on a new connection; (everything received, closed by the proxy)."""
    with connect(port, timeout=timeout) as w:
        w.send(data)
        return w.read_until_closed(timeout)


def exchange(port: int, data: bytes, timeout: float = 5.0, head_only: bool = False) -> Answer:
    """Send ``data`` on a new connection and read until the proxy closes it (or
    ``timeout``, then ``closed`` is False); the first response split by hand."""
    raw, closed = send_and_read(port, data, timeout)
    return parse_first_response(raw, closed, head_only)


def exchange_keepalive(port: int, data: bytes, timeout: float = 5.0) -> Answer:
    """Send ``data``, read one response, then check for ``0.3`` s whether the
    connection was closed after it (``closed``)."""
    with connect(port, timeout=timeout) as w:
        w.send(data)
        raw, closed = w.read_framed(timeout)
        if not closed:
            more, closed = w.read_until_closed(0.3)
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


# ------------------------------------------------------------------ byte-exact messages


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
