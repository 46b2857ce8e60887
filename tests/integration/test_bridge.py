"""The ``bridge`` role as a real child process (SPEC §7), over loopback.

Targets are raw TCP and unix-socket servers in threads of the test process;
clients are the ``websockets`` library (with and without a subprotocol) and,
where the test must control exactly when bytes are read, a raw socket that
speaks just enough WebSocket.  Memory is the proxy's RSS sampled while tens of
MiB pass or while one side stalls: bounded buffering, never a growing queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import struct
import tempfile
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.asyncio.client import connect as ws_connect_async
from websockets.sync.client import connect as ws_connect

from tests.support.backends import ScriptedBackend
from tests.support.leaks import Baseline
from tests.support.memory import RssSampler
from tests.support.procs import ProxyProcess, free_port
from tests.support.waiting import Stalled, wait_until
from tests.support.wire import get, request

MiB = 1 << 20


# ----------------------------------------------------------------- targets

def echo(conn: socket.socket, number: int = 0) -> None:
    while True:
        data = conn.recv(256 * 1024)
        if not data:
            return
        conn.sendall(data)


class UnixScripted:
    """``ScriptedBackend`` on a unix socket."""

    def __init__(self, script) -> None:
        self.dir = tempfile.mkdtemp(prefix="bridge-")
        self.path = os.path.join(self.dir, "target.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.script = script
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn) -> None:
        try:
            self.script(conn, 0)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture(scope="module")
def echo_target():
    server = ScriptedBackend(echo)
    yield server
    server.close()


@pytest.fixture(scope="module")
def bridge(echo_target):
    p = ProxyProcess("bridge", ["--target", f"tcp:127.0.0.1:{echo_target.port}"])
    yield p
    p.stop()


def call(port: int, method: bytes, path: str, body: bytes = b""):
    """One request with ``method`` (and a body) on a new connection."""
    raw = b"%s %s HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: %d\r\n\r\n%s" % (method, path.encode(), len(body), body)
    return request(port, raw, method)


def open_ws(port: int, path: str = "/", **kw):
    kw.setdefault("compression", None)
    return ws_connect(f"ws://127.0.0.1:{port}{path}", proxy=None, max_size=None, open_timeout=10, close_timeout=5,
                      ping_interval=None, **kw)


def recv_bytes(ws, n: int, timeout: float = 20.0) -> bytes:
    """Messages until ``n`` bytes arrived (the target's reads decide the message boundaries)."""
    out = []
    got = 0
    while got < n:
        m = ws.recv(timeout=timeout)
        assert isinstance(m, bytes), "target data must arrive as binary messages"
        out.append(m)
        got += len(m)
    return b"".join(out)


# ------------------------------------------------------ raw WebSocket client

UPGRADE = ("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")


def raw_connect(port: int, path: str = "/", extra: str = "", rcvbuf: int | None = None) -> tuple[socket.socket, bytes]:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.settimeout(20)
    s.sendall(UPGRADE.format(path=path, extra=extra).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        assert data, buf
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return s, rest


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame with the all-zero mask (valid, and no XOR to compute)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


class FrameReader:
    """Reads server frames from a raw socket, hashing data payloads as they pass."""

    def __init__(self, sock: socket.socket, leftover: bytes = b"") -> None:
        self.sock = sock
        self.buf = bytearray(leftover)
        self.data_bytes = 0
        self.digest = hashlib.sha256()
        self.control: list[tuple[int, bytes]] = []

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError
            self.buf += data

    def read_frame(self) -> tuple[int, int]:
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, i = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, i = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, i = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(i + n)
        payload = bytes(self.buf[i:i + n])
        del self.buf[:i + n]
        opcode = b0 & 0x0F
        if opcode < 8:
            self.data_bytes += n
            self.digest.update(payload)
        else:
            self.control.append((opcode, payload))
        return opcode, n

    def read_data(self, total: int) -> None:
        while self.data_bytes < total:
            self.read_frame()


def pattern(n: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(b"%d" % seed).digest() * 2048  # 64 KiB
    return (block * (n // len(block) + 1))[:n]


# ------------------------------------------------------------------ basics

def test_no_subprotocol_binary_and_text_messages(bridge):
    with open_ws(bridge.port, "/any/path?x=1") as ws:
        assert ws.subprotocol is None
        data = b"\x00\x01binary\xff"
        ws.send(data)
        assert recv_bytes(ws, len(data)) == data
        ws.send("text é")
        assert recv_bytes(ws, 7) == "text é".encode()  # text goes as UTF-8 bytes, comes back binary


def test_binary_subprotocol(bridge):
    with open_ws(bridge.port, "/websockify", subprotocols=["binary", "base64"]) as ws:
        assert ws.subprotocol == "binary"
        ws.send(b"hello")
        assert recv_bytes(ws, 5) == b"hello"


def test_base64_subprotocol(bridge):
    import base64

    with open_ws(bridge.port, subprotocols=["base64"]) as ws:
        assert ws.subprotocol == "base64"
        ws.send(base64.b64encode(b"\x00raw\xff").decode())
        assert base64.b64decode(ws.recv(timeout=10)) == b"\x00raw\xff"


def test_healthz_and_405_without_web(bridge):
    assert get(bridge.port, "/healthz").status == 200
    r = get(bridge.port, "/vnc.html")
    assert r.status == 405 and r.header(b"allow") == b"GET"
    r = call(bridge.port, b"POST", "/", b"x")
    assert r.status == 405


def test_unix_socket_target():
    target = UnixScripted(echo)
    try:
        with ProxyProcess("bridge", ["--target", f"unix:{target.path}"]) as p:
            with open_ws(p.port, subprotocols=["binary"]) as ws:
                data = os.urandom(300_000)
                ws.send(data)
                assert recv_bytes(ws, len(data)) == data
    finally:
        target.close()


def test_ipv6_target():
    listener = socket.socket(socket.AF_INET6)
    try:
        listener.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        conn.sendall(b"v6 hello")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        with ProxyProcess("bridge", ["--target", f"tcp:[::1]:{port}"]) as p, open_ws(p.port) as ws:
            assert recv_bytes(ws, 8) == b"v6 hello"
    finally:
        listener.close()


# ------------------------------------------------------------------ closing

def test_target_eof_closes_1000_after_the_data():
    def talk_and_close(conn, number):
        conn.sendall(b"RFB 003.008\n")
        conn.sendall(b"x" * 200_000)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)

    with ScriptedBackend(talk_and_close) as target, \
            ProxyProcess("bridge", ["--target", f"tcp:127.0.0.1:{target.port}"]) as p:
        baseline = Baseline.settle(p)
        with open_ws(p.port) as ws:
            assert recv_bytes(ws, 12 + 200_000)[:12] == b"RFB 003.008\n"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1000 and closed.value.rcvd.reason == "Target closed"
        baseline.assert_reached(p, what="after target EOF")


def test_connect_failure_closes_1011():
    with ProxyProcess("bridge", ["--target", f"tcp:127.0.0.1:{free_port()}"]) as p:
        with open_ws(p.port) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1011


def test_client_close_flushes_and_shuts_the_target():
    received = []
    done = threading.Event()

    def record(conn, number):
        chunks = []
        while True:
            data = conn.recv(65536)
            if not data:
                break
            chunks.append(data)
        received.append(b"".join(chunks))
        done.set()

    with ScriptedBackend(record) as target, \
            ProxyProcess("bridge", ["--target", f"tcp:127.0.0.1:{target.port}"]) as p:
        baseline = Baseline.settle(p)
        data = os.urandom(2 * MiB)
        with open_ws(p.port) as ws:
            ws.send(data)
            ws.send(b"last")
        assert done.wait(10), "the target never saw EOF"
        assert received == [data + b"last"]
        baseline.assert_reached(p, what="after client close")


# --------------------------------------------------------------- --web

def test_web_directory(tmp_path):
    (tmp_path / "vnc.html").write_text("<title>noVNC</title>")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "ui.js").write_text("var x = 1;")
    (tmp_path / "big.bin").write_bytes(pattern(3 * MiB))
    with ScriptedBackend(echo) as target, ProxyProcess(
        "bridge", ["--target", f"tcp:127.0.0.1:{target.port}", "--web", str(tmp_path)]
    ) as p:
        r = get(p.port, "/vnc.html")
        assert (r.status, r.body, r.header(b"content-type")) == (200, b"<title>noVNC</title>", b"text/html; charset=utf-8")
        r = get(p.port, "/app/ui.js")
        assert r.status == 200 and r.header(b"content-type") == b"text/javascript; charset=utf-8"
        r = call(p.port, b"HEAD", "/app/ui.js")
        assert r.status == 200 and r.body == b"" and r.header(b"content-length") == b"10"
        assert get(p.port, "/missing.js").status == 404
        assert get(p.port, "/app/../vnc.html").status == 400
        assert get(p.port, "/app/%2e%2e/vnc.html").status == 400
        r = get(p.port, "/app?x=1")
        assert r.status == 301 and r.header(b"location") == b"/app/?x=1"
        r = get(p.port, "/big.bin")
        assert r.status == 200 and r.body == pattern(3 * MiB)
        r = call(p.port, b"PUT", "/vnc.html", b"x")
        assert r.status == 405 and r.header(b"allow") == b"GET, HEAD"
        with open_ws(p.port, "/websockify") as ws:  # WebSockets still bridge on any path
            ws.send(b"ping")
            assert recv_bytes(ws, 4) == b"ping"


# --------------------------------------------------------------- tokens

def tagged(tag: bytes):
    def script(conn, number):
        conn.sendall(tag)
        echo(conn)

    return script


def which_target(port: int, token: str) -> bytes:
    with open_ws(port, f"/websockify?token={token}") as ws:
        return recv_bytes(ws, 1)


def test_tokens_pick_the_target_and_are_reread_on_change(tmp_path):
    a, b = ScriptedBackend(tagged(b"A")), UnixScripted(tagged(b"B"))
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# websockify format\nvnc-a: 127.0.0.1:{a.port}\nvnc-b: unix_socket:{b.path}\n")
    try:
        with ProxyProcess("bridge", ["--token-file", str(tokens)]) as p:
            assert which_target(p.port, "vnc-a") == b"A"
            assert which_target(p.port, "vnc-b") == b"B"
            for path in ("/websockify?token=nope", "/websockify"):
                with pytest.raises(InvalidStatus) as refused:
                    open_ws(p.port, path)
                assert refused.value.response.status_code == 404
            tokens.write_text(f"vnc-a: unix_socket:{b.path}\n")
            changed = time.monotonic()
            assert wait_until(lambda: which_target(p.port, "vnc-a") == b"B", timeout=3.0, interval=0.05)
            assert time.monotonic() - changed < 2.5
    finally:
        a.close()
        b.close()


def test_token_directory(tmp_path):
    a = ScriptedBackend(tagged(b"A"))
    (tmp_path / "one.conf").write_text(f"one: 127.0.0.1:{a.port}\n")
    try:
        with ProxyProcess("bridge", ["--token-file", str(tmp_path)]) as p:
            assert which_target(p.port, "one") == b"A"
            (tmp_path / "two.conf").write_text(f"two: 127.0.0.1:{a.port}\n")
            assert wait_until(lambda: _status(p.port, "/?token=two") == 101, timeout=3.0, interval=0.05)
    finally:
        a.close()


def _status(port: int, path: str) -> int:
    try:
        with open_ws(port, path):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


# ------------------------------------------------------- volume and memory

def test_large_transfer_both_ways_with_flat_memory(bridge):
    """64 MiB each way through the echo target in 1 MiB messages; RSS stays flat.

    The asyncio client: the sync one holds a lock while it sends, so with both
    directions saturated it cannot read and would deadlock on its own.
    """
    total = 64 * MiB
    data = pattern(MiB, seed=1)

    async def transfer() -> tuple[int, bytes]:
        async with ws_connect_async(f"ws://127.0.0.1:{bridge.port}/", subprotocols=["binary"], max_size=None,
                                    compression=None, ping_interval=None, proxy=None) as ws:
            async def sender():
                for _ in range(total // MiB):
                    await ws.send(data)

            task = asyncio.ensure_future(sender())
            digest = hashlib.sha256()
            got = 0
            while got < total:
                m = await asyncio.wait_for(ws.recv(), 20)
                digest.update(m)
                got += len(m)
            await asyncio.wait_for(task, 20)
            return got, digest.digest()

    with open_ws(bridge.port) as ws:  # warm the proxy up before the baseline
        ws.send(b"warm-up")
        recv_bytes(ws, 7)
    before = bridge.rss_kib()
    with RssSampler(bridge.rss_kib, 0.02) as rss:
        got, digest = asyncio.run(transfer())
    assert got == total and digest == hashlib.sha256(data * (total // MiB)).digest()
    growth = rss.peak_kib - before
    assert growth < 24 * 1024, f"proxy RSS grew {growth} KiB while moving {total >> 20} MiB each way"


def test_slow_client_fast_target_stalls_the_target(bridge):
    """The client reads nothing: the target must soon be unable to send; RSS bounded."""
    offered = 256 * MiB
    sent = [0]
    finished = threading.Event()

    def blast(conn, number):
        block = pattern(MiB, seed=2)
        try:
            while sent[0] < offered:
                conn.sendall(block)
                sent[0] += len(block)
        finally:
            finished.set()

    with ScriptedBackend(blast) as target, \
            ProxyProcess("bridge", ["--target", f"tcp:127.0.0.1:{target.port}"]) as p:
        before = p.rss_kib()
        sock, rest = raw_connect(p.port, rcvbuf=256 * 1024)
        try:
            assert wait_until(lambda: sent[0] >= 4 * MiB, 10), "the target never started"
            stall = Stalled(lambda: sent[0])
            assert wait_until(stall, 30, interval=0.05), f"never stalled: {stall.value} bytes and counting"
            stalled = stall.value
            assert stalled < 64 * MiB, f"target pushed {stalled >> 20} MiB into a client that reads nothing"
            growth = p.rss_kib() - before
            assert growth < 24 * 1024, f"proxy RSS grew {growth} KiB while the client stalled"
            reader = FrameReader(sock, rest)
            with RssSampler(p.rss_kib, 0.05) as rss:
                reader.read_data(offered)
            assert finished.wait(10) and reader.data_bytes == offered
            assert reader.digest.digest() == hashlib.sha256(pattern(MiB, seed=2) * (offered // MiB)).digest()
            assert rss.peak_kib - before < 24 * 1024
        finally:
            sock.close()


def test_fast_client_slow_target_stalls_the_client():
    """The target reads nothing: the client must soon be unable to send; RSS bounded."""
    release = threading.Event()
    received = [0]

    def hold_then_read(conn, number):
        release.wait(60)
        while True:
            data = conn.recv(1 << 20)
            if not data:
                return
            received[0] += len(data)

    offered = 256 * MiB
    with ScriptedBackend(hold_then_read) as target, \
            ProxyProcess("bridge", ["--target", f"tcp:127.0.0.1:{target.port}"]) as p:
        before = p.rss_kib()
        sock, _ = raw_connect(p.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
        sent = [0]
        frame = client_frame(2, pattern(MiB, seed=3))
        done = threading.Event()

        def sender():
            try:
                while sent[0] < offered:
                    sock.sendall(frame)
                    sent[0] += MiB
            except OSError:
                pass
            done.set()

        threading.Thread(target=sender, daemon=True).start()
        try:
            assert wait_until(lambda: sent[0] >= 2 * MiB, 10)
            stall = Stalled(lambda: sent[0])
            assert wait_until(stall, 30, interval=0.05), f"never stalled: {stall.value} bytes and counting"
            stalled = stall.value
            assert stalled < 64 * MiB, f"client pushed {stalled >> 20} MiB towards a target that reads nothing"
            growth = p.rss_kib() - before
            assert growth < 24 * 1024, f"proxy RSS grew {growth} KiB while the target stalled"
            release.set()
            assert done.wait(60) and sent[0] == offered
            assert wait_until(lambda: received[0] == offered, 30), f"{received[0]} of {offered} bytes arrived"
        finally:
            release.set()
            sock.close()


def test_sigterm_says_going_away_and_exits():
    with ScriptedBackend(echo) as target, \
            ProxyProcess("bridge", ["--target", f"tcp:127.0.0.1:{target.port}", "--drain-timeout", "10"]) as p:
        with open_ws(p.port) as ws:
            ws.send(b"x")
            assert recv_bytes(ws, 1) == b"x"
            started = time.monotonic()
            os.kill(p.pid, signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1001
        assert p.proc.wait(10) in (0, -signal.SIGTERM)  # twistd re-raises the signal after a clean stop
        assert time.monotonic() - started < 5  # drained by the closing handshake, not cut at --drain-timeout
