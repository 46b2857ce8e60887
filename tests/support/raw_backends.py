"""Backends that see the wire bytes, for tests that must check them exactly.

``RawRecordingBackend`` records every request's raw head and raw body (chunk
framing and trailers kept) and accepts any byte in the request-target — h11,
which ``RecordingBackend`` uses, refuses bytes ≥ 0x80 there, and those must be
forwarded verbatim (SPEC §3).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from .backends import _Server
from .wire import Head, Wire, read_head, read_request_body


@dataclass
class RawExchange:
    """One request as the backend received it."""

    head: Head
    body: bytes  # raw: chunk framing and trailers as received
    connection: int  # which accepted connection carried it (1-based)

    @property
    def target(self) -> bytes:
        return self.head.target


def ok_response(exchange: RawExchange) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawRecordingBackend(_Server):
    """Keep-alive HTTP/1.1 backend: records raw requests, answers ``respond(exchange)``.

    With ``send_100`` it answers ``Expect: 100-continue`` with an interim 100
    before reading the body, as most servers do.
    """

    def __init__(self, respond=ok_response, send_100: bool = True, host: str = "127.0.0.1",
                 family: int = socket.AF_INET) -> None:
        self.respond = respond
        self.send_100 = send_100
        self.exchanges: list[RawExchange] = []
        self.cond = threading.Condition()
        super().__init__(host, family)

    def handle(self, conn: socket.socket, number: int) -> None:
        wire = Wire(conn, timeout=None)
        while True:
            try:
                head = read_head(wire)
            except EOFError:
                return
            if self.send_100 and (head.get(b"expect") or b"").lower() == b"100-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = read_request_body(wire, head)
            exchange = RawExchange(head, body, number)
            with self.cond:
                self.exchanges.append(exchange)
                self.cond.notify_all()
            reply = self.respond(exchange)
            conn.sendall(reply)
            reply_head = reply.split(b"\r\n\r\n", 1)[0].lower()
            if (head.version != b"HTTP/1.1" or (head.get(b"connection") or b"").lower() == b"close"
                    or b"\r\nconnection: close" in reply_head):
                conn.shutdown(socket.SHUT_WR)
                return

    def wait_exchanges(self, n: int, timeout: float = 10.0) -> list[RawExchange]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.exchanges) >= n, timeout)
            return list(self.exchanges)
