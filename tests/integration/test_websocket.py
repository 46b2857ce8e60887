"""WebSocket upgrades through the real proxy process (SPEC §3 "Upgrades").

A real WebSocket server (the ``websockets`` library) behind ``server/PORT/``,
reached with the ``websockets`` client: subprotocol and extension negotiation are
the backend's, messages of every kind and size echo intact, and a close from
either side closes the other.  Raw byte-level tests check the splice itself:
bytes on either side of the 101, and TCP half-close in both directions.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
import socket
import threading

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.conftest import PROJECT_ID
from tests.support.backends import ScriptedBackend, read_head
from tests.support.leaks import Baseline
from tests.support.procs import ProxyProcess
from tests.support.wire import Wire, connect, get, read_response
from tests.support.wire import read_head as wire_read_head
from tests.support.wsecho import SERVER_ABORT, SERVER_CLOSE, SERVER_CLOSE_CODE, WebSocketEchoServer

PID = PROJECT_ID.encode()
UPGRADE_HEAD = (b"GET /%s/server/%%d/raw?x=1 HTTP/1.1\r\nHost: proxy.test\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n") % PID
SWITCHING = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


@pytest.fixture(scope="module")
def proxy():
    p = ProxyProcess("project", ["--project-id", PROJECT_ID])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def baseline(proxy) -> Baseline:
    assert get(proxy.port, f"/{PROJECT_ID}/healthz").status == 200
    return Baseline.settle(proxy)


@pytest.fixture
def echo():
    server = WebSocketEchoServer(subprotocols=["echo.v2"])
    yield server
    server.close()


def ws_url(proxy, backend_port: int, tail: str = "/ws") -> str:
    return f"ws://127.0.0.1:{proxy.port}/{PROJECT_ID}/server/{backend_port}{tail}"


def open_ws(proxy, echo, tail: str = "/ws", **kw):
    kw.setdefault("subprotocols", ["echo.v2"])
    kw.setdefault("compression", None)
    return ws_connect(ws_url(proxy, echo.port, tail), proxy=None, max_size=None, open_timeout=10,
                      close_timeout=5, ping_interval=None, **kw)


# ----------------------------------------------------------------- real WebSocket peers

def test_subprotocol_is_the_backends_choice(proxy, baseline, echo):
    with open_ws(proxy, echo, "/ws/path?token=a%20b", subprotocols=["not-supported", "echo.v2"]) as ws:
        assert ws.subprotocol == "echo.v2"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "echo.v2"
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"
    [session] = echo.wait_ended(1)
    assert session.path == "/ws/path?token=a%20b"  # prefix stripped, query verbatim
    assert session.subprotocol == "echo.v2"
    offered = [v for k, v in session.headers if k.lower() == "sec-websocket-protocol"]
    assert offered == ["not-supported, echo.v2"]
    baseline.assert_reached(proxy, what="after a WebSocket session")


@pytest.mark.parametrize("kind", ["port", "proxy"])
def test_other_routes_upgrade_too(proxy, echo, kind):
    url = f"ws://127.0.0.1:{proxy.port}/{PROJECT_ID}/{kind}/{echo.port}/ws?k=v"
    with ws_connect(url, proxy=None, subprotocols=["echo.v2"], compression=None, open_timeout=10) as ws:
        ws.send(b"\x00\xff")
        assert ws.recv(timeout=5) == b"\x00\xff"
    [session] = echo.wait_ended(1)
    assert session.path == (f"/{PROJECT_ID}/port/{echo.port}/ws?k=v" if kind == "port" else "/ws?k=v")


def test_no_subprotocol_when_backend_has_none(proxy):
    server = WebSocketEchoServer(subprotocols=None)
    try:
        with open_ws(proxy, server, subprotocols=["chat"]) as ws:
            assert ws.subprotocol is None
            assert "Sec-WebSocket-Protocol" not in ws.response.headers
            ws.send("x")
            assert ws.recv(timeout=5) == "x"
    finally:
        server.close()


def test_handshake_rejected_by_backend_reaches_client(proxy, echo):
    """No common subprotocol: the backend answers 400, and so does the proxy."""
    with pytest.raises(InvalidStatus) as info:
        open_ws(proxy, echo, subprotocols=["other"])
    assert info.value.response.status_code == 400
    assert b"subprotocol" in info.value.response.body.lower()


def test_compression_extension_negotiated_end_to_end(proxy):
    server = WebSocketEchoServer(compression="deflate")
    try:
        with open_ws(proxy, server, subprotocols=None, compression="deflate") as ws:
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            text = "compressible " * 10000
            ws.send(text)
            assert ws.recv(timeout=10) == text
    finally:
        server.close()


def test_text_and_binary_messages_echo(proxy, echo):
    messages = ["", "hello", "naïve ☃ 🐍", "x" * 70000, b"", bytes(range(256)), os.urandom(200000)]
    with open_ws(proxy, echo) as ws:
        for m in messages:
            ws.send(m)
            got = ws.recv(timeout=10)
            assert type(got) is type(m)
            assert got == m
        # Many in flight at once: order and boundaries kept.
        burst = [b"%d" % i * (i % 7 + 1) for i in range(500)]
        for m in burst:
            ws.send(m)
        assert [ws.recv(timeout=10) for _ in burst] == burst


def test_large_and_fragmented_messages_echo_intact(proxy, echo):
    big = os.urandom(8 << 20)
    with open_ws(proxy, echo) as ws:
        ws.send(big)
        assert ws.recv(timeout=30) == big
        fragments = [os.urandom(1 << 20) for _ in range(4)]
        ws.send(fragments)  # one message in four frames
        assert ws.recv(timeout=30) == b"".join(fragments)
        text = "é" * (2 << 20)
        ws.send(text)
        assert ws.recv(timeout=30) == text


def test_client_close_reaches_backend(proxy, baseline, echo):
    with open_ws(proxy, echo) as ws:
        ws.send("before close")
        assert ws.recv(timeout=5) == "before close"
        ws.close(1000, "client done")
        assert ws.close_code == 1000  # the backend's answering close frame came back
    [session] = echo.wait_ended(1)
    assert (session.close_code, session.close_reason) == (1000, "client done")
    baseline.assert_reached(proxy, what="after a client-side close")


def test_server_close_reaches_client(proxy, baseline, echo):
    with open_ws(proxy, echo) as ws:
        ws.send(SERVER_CLOSE)
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=5)
        assert (ws.close_code, ws.close_reason) == (SERVER_CLOSE_CODE, "server says bye")
    [session] = echo.wait_ended(1)
    assert session.close_code == SERVER_CLOSE_CODE
    baseline.assert_reached(proxy, what="after a server-side close")


def test_backend_vanishing_closes_client(proxy, baseline, echo):
    """The backend's TCP connection ends without a close frame: the client sees
    the connection end (1006), it does not hang."""
    with open_ws(proxy, echo) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        ws.send(SERVER_ABORT)
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=10)
        assert ws.close_code == 1006
    baseline.assert_reached(proxy, what="after the backend vanished")


def test_many_concurrent_sessions(proxy, baseline, echo):
    with ExitStack() as stack:
        sockets = [stack.enter_context(open_ws(proxy, echo)) for _ in range(20)]
        for i, ws in enumerate(sockets):
            ws.send(f"session {i}")
        for i, ws in enumerate(sockets):
            assert ws.recv(timeout=5) == f"session {i}"
    assert [s.close_code for s in echo.wait_ended(20)] == [1000] * 20
    baseline.assert_reached(proxy, what="after 20 sessions")


# ----------------------------------------------------------------- raw splice

class SpliceBackend(ScriptedBackend):
    """Answers an upgrade with 101 (plus ``early`` bytes in the same write), then
    runs ``after(conn, extra)`` where ``extra`` is what followed the head."""

    def __init__(self, after, early: bytes = b"") -> None:
        self.heads: list[bytes] = []
        self.results: list = []
        self.done = threading.Event()

        def script(conn, number):
            head, extra = read_head(conn)
            self.heads.append(head)
            conn.sendall(SWITCHING + early)
            try:
                self.results.append(after(conn, extra))
            finally:
                self.done.set()

        super().__init__(script)


def read_to_eof(conn: socket.socket, extra: bytes = b"") -> bytes:
    conn.settimeout(10)
    data = [extra]
    while chunk := conn.recv(65536):
        data.append(chunk)
    return b"".join(data)


def test_upgrade_head_and_bytes_around_the_101(proxy, baseline):
    """The backend sees the upgrade headers; bytes the client sent right behind
    the request and bytes the backend sent right behind its 101 both get through."""
    def echo_until_eof(conn, extra):
        received = read_to_eof(conn, extra)
        conn.sendall(b"echo:" + received)
        return received

    with SpliceBackend(echo_until_eof, early=b"hello-from-backend") as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(UPGRADE_HEAD.replace(b"%d", b"%d" % backend.port) + b"early-client-bytes")
        head = wire_read_head(wire)
        assert head.start_line == b"HTTP/1.1 101 Switching Protocols"
        assert sorted(head.headers) == sorted([(b"upgrade", b"websocket"), (b"connection", b"upgrade"),
                                               (b"sec-websocket-accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")])
        assert wire.read_exact(len(b"hello-from-backend")) == b"hello-from-backend"
        wire.sock.sendall(b"|more")
        wire.sock.shutdown(socket.SHUT_WR)
        assert wire.read_to_eof() == b"echo:early-client-bytes|more"
        wire.sock.close()
        assert backend.done.wait(10)
    [seen] = backend.heads
    lines = seen.split(b"\r\n")
    assert lines[0] == b"GET /raw?x=1 HTTP/1.1"
    lower = [line.lower() for line in lines]
    assert b"upgrade: websocket" in lower
    assert b"connection: upgrade" in lower
    assert b"sec-websocket-key: dghlihnhbxbszsbub25jzq==" in lower
    baseline.assert_reached(proxy, what="after a raw splice")


def test_client_half_close_backend_still_replies(proxy, baseline):
    def reply_after_eof(conn, extra):
        received = read_to_eof(conn, extra)  # the client's FIN arrives here as EOF
        conn.sendall(b"reply after your FIN to " + received)
        conn.sendall(b" and more")
        return received

    with SpliceBackend(reply_after_eof) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(UPGRADE_HEAD.replace(b"%d", b"%d" % backend.port))
        assert wire_read_head(wire).status == 101
        wire.sock.sendall(b"last words")
        wire.sock.shutdown(socket.SHUT_WR)
        assert wire.read_to_eof() == b"reply after your FIN to last words and more"  # then EOF: closed
        wire.sock.close()
        assert backend.done.wait(10)
    assert backend.results == [b"last words"]
    baseline.assert_reached(proxy, what="after a client half-close")


def test_backend_half_close_client_still_sends(proxy, baseline):
    def send_then_half_close(conn, extra):
        conn.sendall(b"server is done talking")
        conn.shutdown(socket.SHUT_WR)
        return read_to_eof(conn, extra)  # still receives the client's bytes

    with SpliceBackend(send_then_half_close) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(UPGRADE_HEAD.replace(b"%d", b"%d" % backend.port))
        assert wire_read_head(wire).status == 101
        assert wire.read_to_eof() == b"server is done talking"  # the backend's FIN reached us
        wire.sock.sendall(b"client keeps talking")
        wire.sock.shutdown(socket.SHUT_WR)
        assert backend.done.wait(10)
        wire.sock.close()
    assert backend.results == [b"client keeps talking"]
    baseline.assert_reached(proxy, what="after a backend half-close")


def test_refused_upgrade_is_an_ordinary_response(proxy, baseline):
    def refuse(conn, number):
        wire = Wire(conn)
        for _ in range(2):
            head = wire_read_head(wire)
            if head.get(b"upgrade"):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno ws!")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")

    with ScriptedBackend(refuse) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(UPGRADE_HEAD.replace(b"%d", b"%d" % backend.port))
        _, head, body = read_response(wire)
        assert (head.status, body) == (403, b"no ws!")
        assert head.get(b"upgrade") is None
        wire.sock.sendall(b"GET /%s/server/%d/next HTTP/1.1\r\nHost: x\r\n\r\n" % (PID, backend.port))
        _, head, body = read_response(wire)  # the connection stayed an HTTP connection
        assert (head.status, body) == (200, b"plain")
        wire.sock.close()
    baseline.assert_reached(proxy, what="after a refused upgrade")
