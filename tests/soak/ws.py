"""A single-threaded WebSocket client and echo server for the soak (RFC 6455, just enough).

Why not the ``websockets`` library here, as the other tests do: its sync
connection reads in a background thread while the caller writes from its own,
so over ``wss://`` two threads use one ``ssl.SSLSocket`` at once — concurrent
``SSL_read``/``SSL_write`` on one OpenSSL session, which OpenSSL forbids and
Python 3.11's ``ssl`` module does not serialise.  One-off tests never notice;
the soak did: with the library client, 300 s gave 17 failures — handshakes
that waited 30 s for an answer and, at the same moments,
``WRONG_VERSION_NUMBER`` on unrelated ``http.client`` connections of the same
test process, nothing in the proxies' logs — and, against the very same proxy
code, none with this client (the likely cause; not chased further).
A measuring instrument must not fail by itself, so here every socket is used
and closed by exactly one thread: the worker's client below, and one thread
per connection in ``EchoServer``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import threading

from tests.support.procs import bind_loopback

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 1, 2, 8, 9, 10, 0


class Refused(Exception):
    """The upgrade was answered with something other than 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"upgrade answered {status}")
        self.status = status
        self.body = body


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"WebSocket closed ({code})")
        self.code = code


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def xor(data: bytes, mask: bytes) -> bytes:
    """``data`` masked with the 4-byte ``mask`` (whole-buffer integer XOR: fast for MiBs)."""
    n = len(data)
    if not n:
        return b""
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(m, "little")).to_bytes(n, "little")


def frame(opcode: int, payload: bytes, mask: bool) -> bytes:
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head = bytes([0x80 | opcode, bit | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, bit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, bit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + xor(payload, key)


class Stream:
    """A blocking socket with a read buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def fill(self) -> None:
        data = self.sock.recv(256 * 1024)
        if not data:
            raise EOFError("the peer closed the connection")
        self.buf += data

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def until(self, sep: bytes, limit: int = 65536) -> bytes:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[: i + len(sep)])
                del self.buf[: i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ValueError(f"no {sep!r} within {limit} bytes")
            self.fill()

    def read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self.exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self.exact(2), "big")
        elif n == 127:
            n = int.from_bytes(self.exact(8), "big")
        key = self.exact(4) if b1 & 0x80 else None
        payload = self.exact(n)
        return bool(b0 & 0x80), b0 & 0x0F, xor(payload, key) if key else payload


def parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
    return status, headers


class Client:
    """``Client.connect(...)`` → an open WebSocket, or ``Refused(status)``."""

    def __init__(self, stream: Stream, subprotocol: str | None) -> None:
        self.stream = stream
        self.subprotocol = subprotocol

    @classmethod
    def connect(cls, port: int, path: str, headers: dict, context: ssl.SSLContext | None, timeout: float,
                subprotocols: list[str] | None = None) -> "Client":
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock = context.wrap_socket(raw, server_hostname="localhost") if context else raw
        try:
            key = base64.b64encode(os.urandom(16))
            lines = [f"GET {path} HTTP/1.1", f"Host: localhost:{port}", "Upgrade: websocket", "Connection: Upgrade",
                     f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13"]
            if subprotocols:
                lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
            lines += [f"{k}: {v}" for k, v in headers.items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            stream = Stream(sock)
            status, got = parse_head(stream.until(b"\r\n\r\n"))
            if status != 101:
                body = stream.exact(int(got.get(b"content-length", b"0")))
                raise Refused(status, body)
            if got.get(b"sec-websocket-accept") != accept_key(key):
                raise AssertionError(f"bad Sec-WebSocket-Accept {got.get(b'sec-websocket-accept')!r}")
            proto = got.get(b"sec-websocket-protocol")
            return cls(stream, proto.decode() if proto else None)
        except BaseException:
            sock.close()
            raise

    def send(self, message: bytes | str) -> None:
        if isinstance(message, str):
            self.stream.sock.sendall(frame(TEXT, message.encode(), True))
        else:
            self.stream.sock.sendall(frame(BINARY, message, True))

    def recv(self) -> bytes | str:
        parts = []
        kind = None
        while True:
            fin, opcode, payload = self.stream.read_frame()
            if opcode == PING:
                self.stream.sock.sendall(frame(PONG, payload, True))
                continue
            if opcode == PONG:
                continue
            if opcode == CLOSE:
                raise Closed(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None)
            if opcode != CONTINUATION:
                kind = opcode
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                return data.decode() if kind == TEXT else data

    def close(self) -> int | None:
        """Closing handshake: our close frame, then frames until the peer's; its code."""
        try:
            self.stream.sock.sendall(frame(CLOSE, (1000).to_bytes(2, "big"), True))
            while True:
                try:
                    self.recv()
                except Closed as c:
                    return c.code
        finally:
            self.stream.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            code = self.close()
            if code != 1000:
                raise AssertionError(f"the closing handshake ended with code {code}")
        else:
            self.stream.sock.close()


class EchoServer:
    """Every message back as it came (text or binary); one thread per connection.

    ``paths`` keeps the request path of each upgrade (a refused request that
    reached it would show up there)."""

    def __init__(self) -> None:
        self.sock = bind_loopback("127.0.0.1", socket.AF_INET)
        self.port = self.sock.getsockname()[1]
        self.paths: list[str] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.closing = False
        threading.Thread(target=self._accept, daemon=True, name="soak-ws-echo").start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            stream = Stream(conn)
            head = stream.until(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            _, headers = parse_head(b"HTTP/1.1 0 x\r\n" + head.split(b"\r\n", 1)[1])
            with self.lock:
                self.paths.append(path)
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept_key(headers[b"sec-websocket-key"]) + b"\r\n\r\n")
            parts, kind = [], BINARY
            while True:
                fin, opcode, payload = stream.read_frame()
                if opcode == CLOSE:
                    conn.sendall(frame(CLOSE, payload[:2], False))
                    conn.shutdown(socket.SHUT_WR)
                    while conn.recv(65536):  # to the peer's FIN: never close with unread input
                        pass
                    return
                if opcode == PING:
                    conn.sendall(frame(PONG, payload, False))
                    continue
                if opcode != CONTINUATION:
                    kind = opcode
                parts.append(payload)
                if fin:
                    conn.sendall(frame(kind, b"".join(parts), False))
                    parts = []
        except (OSError, EOFError, ValueError) as e:
            with self.lock:
                if len(self.errors) < 20:
                    self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    @property
    def sessions(self) -> int:
        with self.lock:
            return len(self.paths)

    def close(self) -> None:
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
