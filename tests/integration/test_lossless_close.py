"""No byte is lost when one side closes while the other is still talking (issue: relay close).

Every splice path — the bridge role (WebSocket ↔ raw TCP / unix socket) and the
HTTP ``Upgrade`` tunnel of the project role — is driven the way a client that
"sends and closes at once" drives it: N bytes in many pieces, then a close
(WebSocket close frame, or FIN on the tunnel), while the target echoes what it
reads, only reads, or reads slowly (pushing back).  The target counts and
hashes what it got and records whether its stream ended in a FIN or an RST;
then the same in the other direction (the target sends N bytes and FIN while
the client is still sending).  A proxy that closes a socket with unread input
makes the kernel answer RST, and the peer then drops what it had not read yet.

Also here: answers the proxy sends before it has read a request body (404,
502, 400 in the middle of the body) reach a client that is still uploading.
"""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.support.procs import ProxyProcess, free_port
from tests.support.sinks import StreamTarget, pattern

KiB = 1024
MiB = 1 << 20
PIECE = 50_000  # the size of each WebSocket message / socket write, as in the report
SIZES = [1, 1000, 200_000, 1 * MiB, 8 * MiB]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def targets():
    made = []

    def make(*args, **kw) -> StreamTarget:
        t = StreamTarget(*args, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def start_bridge(target: StreamTarget) -> ProxyProcess:
    return ProxyProcess("bridge", ["--target", target.address])


class Drain(threading.Thread):
    """Reads a WebSocket until it closes, hashing what arrives."""

    def __init__(self, ws) -> None:
        super().__init__(daemon=True)
        self.ws = ws
        self.digest = hashlib.sha256()
        self.nbytes = 0
        self.start()

    def run(self) -> None:
        try:
            while True:
                data = self.ws.recv()
                if isinstance(data, str):
                    data = data.encode()
                self.nbytes += len(data)
                self.digest.update(data)
        except ConnectionClosed:
            pass


def ws_send_then_close(port: int, data: bytes) -> Drain:
    with ws_connect(f"ws://127.0.0.1:{port}/", max_size=None, compression=None, close_timeout=30) as ws:
        drain = Drain(ws)
        for i in range(0, len(data), PIECE):
            ws.send(data[i:i + PIECE])
        ws.close()
    drain.join(30)
    return drain


# ------------------------------------------------------ bridge: client closes

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["echo", "read"])
@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_bridge_client_close_loses_nothing(targets, size, mode, unix):
    target = targets(mode, unix=unix)
    data = pattern(size)
    with start_bridge(target) as proxy:
        ws_send_then_close(proxy.port, data)
        got = target.wait(timeout=60)
    assert (got.nbytes, got.sha(), got.ended) == (size, sha(data), "eof")


@pytest.mark.parametrize("size", [200_000, 2 * MiB])
def test_bridge_client_close_with_a_slow_target_loses_nothing(targets, size):
    target = targets("slow", slow_piece=8 * KiB, slow_pause=0.0005)
    data = pattern(size)
    with start_bridge(target) as proxy:
        ws_send_then_close(proxy.port, data)
        got = target.wait(timeout=60)
    assert (got.nbytes, got.sha(), got.ended) == (size, sha(data), "eof")


# ------------------------------------------------------ bridge: target closes

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_bridge_target_close_loses_nothing_either_way(targets, size, unix):
    """The target sends N bytes and FIN while the client is still sending: the
    client gets all N and a normal close; the target gets every message the
    client sent before it saw our close (a WebSocket client stops sending then)."""
    target = targets("send", unix=unix, send_bytes=size)
    upstream = pattern(300_000, seed=7)
    sent = b""
    with start_bridge(target) as proxy:
        with ws_connect(f"ws://127.0.0.1:{proxy.port}/", max_size=None, compression=None, close_timeout=30) as ws:
            drain = Drain(ws)
            try:
                for i in range(0, len(upstream), PIECE):
                    ws.send(upstream[i:i + PIECE])
                    sent = upstream[:i + PIECE]
            except ConnectionClosed:
                pass  # our close arrived first: the rest was never sent
            drain.join(60)
            code = ws.close_code
        got = target.wait(timeout=60)
    expected = pattern(size, seed=1)
    assert (drain.nbytes, drain.digest.hexdigest(), code) == (size, sha(expected), 1000)
    assert (got.nbytes, got.sha(), got.ended) == (len(sent), sha(sent), "eof")


# --------------------------------------------------------- the HTTP tunnel

def open_tunnel(proxy: ProxyProcess, port: int) -> tuple[socket.socket, bytes]:
    """An upgraded connection through the proxy, and tunnel bytes that came with the 101."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
    sock.sendall(b"GET /port/%d/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" % port)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    head, _, early = head.partition(b"\r\n\r\n")
    return sock, early


class SocketDrain(threading.Thread):
    def __init__(self, sock: socket.socket, early: bytes = b"") -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.digest = hashlib.sha256(early)
        self.nbytes = len(early)
        self.ended = ""
        self.start()

    def run(self) -> None:
        try:
            while True:
                data = self.sock.recv(256 * 1024)
                if not data:
                    self.ended = "eof"
                    return
                self.nbytes += len(data)
                self.digest.update(data)
        except ConnectionResetError:
            self.ended = "reset"
        except OSError:
            self.ended = "error"


@pytest.fixture(scope="module")
def tunnel_proxy():
    p = ProxyProcess("project")
    yield p
    p.stop()


@pytest.mark.parametrize("mode, size", [(m, n) for m in ("echo", "read") for n in SIZES]
                         + [("slow", n) for n in (200_000, 2 * MiB)])
def test_tunnel_client_fin_loses_nothing(tunnel_proxy, targets, size, mode):
    target = targets(mode, http_upgrade=True, slow_piece=8 * KiB, slow_pause=0.0005)
    data = pattern(size)
    sock, early = open_tunnel(tunnel_proxy, target.port)
    drain = SocketDrain(sock, early)
    for i in range(0, len(data), PIECE):
        sock.sendall(data[i:i + PIECE])
    sock.shutdown(socket.SHUT_WR)
    got = target.wait(timeout=60)
    drain.join(30)
    sock.close()
    assert (got.nbytes, got.sha(), got.ended) == (size, sha(data), "eof")
    if mode == "echo":
        assert (drain.nbytes, drain.digest.hexdigest(), drain.ended) == (size, sha(data), "eof")
    else:
        assert (drain.nbytes, drain.ended) == (0, "eof")


@pytest.mark.parametrize("size", [1, 200_000, 1 * MiB])
def test_tunnel_client_full_close_loses_nothing(tunnel_proxy, targets, size):
    """A client that closes its socket (not only its sending side) after writing."""
    target = targets("read", http_upgrade=True)
    data = pattern(size)
    sock, _ = open_tunnel(tunnel_proxy, target.port)
    for i in range(0, len(data), PIECE):
        sock.sendall(data[i:i + PIECE])
    sock.close()
    got = target.wait(timeout=60)
    assert (got.nbytes, got.sha(), got.ended) == (size, sha(data), "eof")


@pytest.mark.parametrize("size", SIZES)
def test_tunnel_target_fin_loses_nothing_either_way(tunnel_proxy, targets, size):
    target = targets("send", http_upgrade=True, send_bytes=size)
    upstream = pattern(300_000, seed=7)
    sock, early = open_tunnel(tunnel_proxy, target.port)
    drain = SocketDrain(sock, early)
    for i in range(0, len(upstream), PIECE):
        sock.sendall(upstream[i:i + PIECE])
    sock.shutdown(socket.SHUT_WR)
    drain.join(60)
    got = target.wait(timeout=60)
    sock.close()
    expected = pattern(size, seed=1)
    assert (drain.nbytes, drain.digest.hexdigest(), drain.ended) == (size, sha(expected), "eof")
    assert (got.nbytes, got.sha(), got.ended) == (len(upstream), sha(upstream), "eof")


# ------------------------------------- HTTP answers sent before the body is read

def upload_and_read(port: int, head: bytes, body_size: int) -> bytes:
    """Send ``head`` and then a body of ``body_size`` bytes from a thread while
    reading the answer; return everything read until the proxy closed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head)

    def upload() -> None:
        data = b"x" * PIECE
        sent = 0
        try:
            while sent < body_size:
                sock.sendall(data[: min(PIECE, body_size - sent)])
                sent += PIECE
        except OSError:
            pass  # the proxy stopped reading: expected once it answered

    t = threading.Thread(target=upload, daemon=True)
    t.start()
    answer = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    except ConnectionResetError:
        pass
    t.join(30)
    sock.close()
    return answer


BIG = 16 * MiB


@pytest.mark.parametrize("route,status", [
    ("/nothing/here", 404),
    ("/port/%d/x" % 1, 502),  # port 1: nothing listens there
])
def test_answer_before_the_body_reaches_an_uploading_client(tunnel_proxy, route, status):
    if status == 502:
        route = "/port/%d/x" % free_port()
    head = b"PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (route.encode(), BIG)
    answer = upload_and_read(tunnel_proxy.port, head, BIG)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    head_part, _, body = answer.partition(b"\r\n\r\n")
    length = int([ln.split(b":")[1] for ln in head_part.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
    assert len(body) == length


def test_bad_chunk_mid_body_400_reaches_an_uploading_client(tunnel_proxy, targets):
    """A chunked upload whose framing breaks after the proxy began forwarding it."""
    target = targets("read", http_upgrade=False)
    sock = socket.create_connection(("127.0.0.1", tunnel_proxy.port), timeout=30)
    sock.sendall(b"PUT /port/%d/up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" % target.port)
    sock.sendall(b"10\r\n0123456789abcdef\r\n")
    sock.sendall(b"zz\r\n")  # not a chunk size

    def upload() -> None:
        try:
            for _ in range(200):
                sock.sendall(b"x" * PIECE)
        except OSError:
            pass

    t = threading.Thread(target=upload, daemon=True)
    t.start()
    answer = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    except ConnectionResetError:
        pass
    t.join(30)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert answer.endswith(b"</html>\n")
