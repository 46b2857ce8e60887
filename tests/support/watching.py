"""A backend that watches how each connection from the proxy ends.

``RecordingBackend`` only reports complete requests; to prove that a request
the proxy gave up on was *aborted* (TCP reset) rather than ended cleanly — so
a backend can never mistake half a request for a whole one — this backend
keeps every byte each connection sent and whether it ended with EOF or RST.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from .backends import ScriptedBackend, read_head

EOF = "eof"
RESET = "reset"


@dataclass
class Watched:
    data: bytes = b""
    head: bytes | None = None
    end: str | None = None  # EOF or RESET once the connection ended
    head_event: threading.Event = field(default_factory=threading.Event)
    end_event: threading.Event = field(default_factory=threading.Event)


class WatchingBackend(ScriptedBackend):
    """Reads each connection to its end.  With ``reply``, answers it once a request
    head has arrived (and keeps reading)."""

    def __init__(self, reply: bytes | None = None, host: str = "127.0.0.1", family: int = socket.AF_INET) -> None:
        self.reply = reply
        self.watched: dict[int, Watched] = {}
        self.first = threading.Event()
        super().__init__(self._watch, host, family)

    def _watch(self, conn: socket.socket, number: int) -> None:
        w = self.watched[number] = Watched()
        self.first.set()
        try:
            head, extra = read_head(conn)
            w.data = head + extra
            if head.endswith(b"\r\n\r\n"):
                w.head = head
                w.head_event.set()
                if self.reply is not None:
                    conn.sendall(self.reply)
            else:
                w.end = EOF
                return
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    w.end = EOF
                    return
                w.data += chunk
        except ConnectionResetError:
            w.end = RESET
        finally:
            w.head_event.set()
            w.end_event.set()

    def connection(self, number: int = 1, timeout: float = 5.0) -> Watched:
        """The ``number``-th connection, once it has ended."""
        if not self.first.wait(timeout):
            raise AssertionError("the proxy never connected to the backend")
        w = self.watched[number]
        if not w.end_event.wait(timeout):
            raise AssertionError(f"backend connection {number} did not end within {timeout}s")
        return w
