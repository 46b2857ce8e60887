"""Blocking test clients that send exact bytes and parse answers with h11."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import h11


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]  # lower-cased names
    body: bytes
    http_version: bytes = b"1.1"
    informational: list = None  # 1xx responses seen before this one

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return values[-1] if values else None

    def header_all(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name.lower()]


class RawClient:
    """A client connection that writes raw bytes and reads responses one by one."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_some(self) -> bytes:
        if self.buf:
            data, self.buf = self.buf, b""
            return data
        return self.sock.recv(65536)

    def read_response(self, method: bytes = b"GET") -> Answer:
        """Read one complete response (h11 parses; 1xx collected into ``informational``)."""
        h = h11.Connection(h11.CLIENT)
        h.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        h.send(h11.EndOfMessage())
        info = []
        resp = None
        body = b""
        while True:
            ev = h.next_event()
            if ev is h11.NEED_DATA:
                data = self.buf or self.sock.recv(65536)
                self.buf = b""
                h.receive_data(data)
                continue
            if isinstance(ev, h11.InformationalResponse):
                info.append(ev)
                if ev.status_code == 101:
                    self.buf = bytes(h.trailing_data[0])
                    return Answer(101, [(k.lower(), v) for k, v in ev.headers.raw_items()], b"", ev.http_version, info)
            elif isinstance(ev, h11.Response):
                resp = ev
            elif isinstance(ev, h11.Data):
                body += bytes(ev.data)
            elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                self.buf = bytes(h.trailing_data[0])
                return Answer(resp.status_code, [(k.lower(), v) for k, v in resp.headers.raw_items()], body,
                              resp.http_version, info)

    def read_until_close(self) -> bytes:
        out = [self.buf]
        self.buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out.append(data)
        return b"".join(out)

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def request(port: int, raw: bytes, method: bytes = b"GET", timeout: float = 10.0) -> Answer:
    """Send one raw request on a new connection and read one response."""
    with RawClient(port, timeout=timeout) as c:
        c.send(raw)
        return c.read_response(method)


def get(port: int, path: str, headers: dict | None = None, host: str = "proxy.test") -> Answer:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return request(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
