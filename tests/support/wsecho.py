"""A real WebSocket echo server (the ``websockets`` library) in a thread.

Every text or binary message is sent back unchanged, except the text command
``"close-from-server"``, on which the server closes with code 4001, and
``"abort-from-server"``, on which it shuts its TCP connection down without a
close frame.  What each
connection saw (request path, negotiated subprotocol, close code received) is
recorded so tests can check the backend's side too.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

SERVER_CLOSE = "close-from-server"
SERVER_CLOSE_CODE = 4001
SERVER_ABORT = "abort-from-server"


@dataclass
class EchoSession:
    path: str
    subprotocol: str | None
    headers: list[tuple[str, str]]
    close_code: int | None = None
    close_reason: str | None = None


class WebSocketEchoServer:
    def __init__(self, subprotocols: list[str] | None = None, compression: str | None = None) -> None:
        self.sessions: list[EchoSession] = []
        self.ended = threading.Condition()
        self.server = serve(self._handle, "127.0.0.1", 0, subprotocols=subprotocols, compression=compression,
                            max_size=None, max_queue=None, ping_interval=None, close_timeout=5)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, ws) -> None:
        session = EchoSession(ws.request.path, ws.subprotocol, list(ws.request.headers.raw_items()))
        self.sessions.append(session)
        try:
            for message in ws:
                if message == SERVER_CLOSE:
                    ws.close(SERVER_CLOSE_CODE, "server says bye")
                    break
                if message == SERVER_ABORT:
                    ws.socket.shutdown(socket.SHUT_RDWR)
                    break
                ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            with self.ended:
                session.close_code = ws.close_code
                session.close_reason = ws.close_reason
                self.ended.notify_all()

    def wait_ended(self, n: int, timeout: float = 10.0) -> list[EchoSession]:
        """The first ``n`` sessions, once each handler has finished."""
        with self.ended:
            self.ended.wait_for(
                lambda: len(self.sessions) >= n and all(s.close_code is not None for s in self.sessions[:n]),
                timeout,
            )
            return list(self.sessions[:n])

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
