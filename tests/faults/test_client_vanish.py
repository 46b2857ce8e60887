"""A client vanishing mid-upload, mid-download or mid-tunnel: the backend's
connection is closed within a second (asserted on the backend's side: it sees
EOF or a reset), for the project role and through the whole chain (hub with
TLS → host → project → backend), so a dead client never keeps a backend
writing into a full buffer or waiting for the rest of a body.

A client "vanishes" by closing its socket (FIN; a download's unread bytes make
its kernel answer with RST anyway) or by resetting it (SO_LINGER 0).
"""

from __future__ import annotations

import time

import pytest

from tests.faults.helpers import WatchfulBackend, plain_client, reset_close, tls_client
from tests.support.chain import Chain
from tests.support.procs import ProxyProcess
from tests.support.sinks import StreamTarget
from tests.support.waiting import wait_until

MiB = 1 << 20
WITHIN = 1.0  # the brief: the backend sees the end within a second
VANISH = ["close", "reset"]


@pytest.fixture(scope="module")
def project():
    p = ProxyProcess("project", ["--no-entry-points"])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("vanish-chain"))
    yield c
    c.close()


class Via:
    """How a test reaches a backend port: straight to the project role, or through the hub."""

    def __init__(self, name: str, project=None, chain: Chain | None = None) -> None:
        self.name = name
        self.project = project
        self.chain = chain

    def connect(self):
        if self.chain is None:
            return plain_client(self.project.port)
        return tls_client(self.chain.hub.port, self.chain.context())

    def head(self, method: str, port: int, rest: str, *lines: bytes) -> bytes:
        if self.chain is None:
            path, extra = f"/server/{port}/{rest}", []
        else:
            path, extra = self.chain.backend_url_path(port, rest), [b"Cookie: " + self.chain.cookie().encode()]
        return b"\r\n".join([f"{method} {path} HTTP/1.1".encode(), b"Host: localhost", *extra, *lines]) + b"\r\n\r\n"


@pytest.fixture(params=["project", "chain"])
def via(request):
    if request.param == "project":
        return Via("project", project=request.getfixturevalue("project"))
    return Via("chain", chain=request.getfixturevalue("chain"))


def vanish(wire, how: str) -> float:
    if how == "reset":
        reset_close(wire.sock)
    else:
        wire.sock.close()
    return time.monotonic()


@pytest.mark.parametrize("how", VANISH)
def test_client_vanishing_mid_upload_closes_the_backend_within_a_second(via, how):
    backend = WatchfulBackend("upload")
    try:
        wire = via.connect()
        wire.send(via.head("PUT", backend.port, "upload", b"Content-Length: %d" % (64 * MiB)))
        piece = b"u" * (256 * 1024)
        for _ in range(8):  # 2 MiB of the 64 announced
            wire.send(piece)
        ending = backend.connection(1)
        assert wait_until(lambda: ending.received >= 1 * MiB, 10), f"only {ending.received} bytes reached the backend"
        gone = vanish(wire, how)
        assert ending.ended.wait(WITHIN + 0.5), f"the backend still waits for the body {WITHIN}s after the client left"
        took = ending.at - gone
        assert took <= WITHIN, f"the backend connection ended {took:.2f}s after the client vanished"
        assert ending.how in ("eof", "reset")
        assert ending.received < 64 * MiB
    finally:
        backend.close()


@pytest.mark.parametrize("how", VANISH)
def test_client_vanishing_mid_download_closes_the_backend_within_a_second(via, how):
    backend = WatchfulBackend("download")
    try:
        wire = via.connect()
        wire.send(via.head("GET", backend.port, "download"))
        got = 0
        while got < 2 * MiB:  # read part of the (1 TiB) body, then stop reading
            got += len(wire.read_some())
        ending = backend.connection(1)
        time.sleep(0.3)  # every hop's buffers fill up: the backend is pushed back
        gone = vanish(wire, how)
        assert ending.ended.wait(WITHIN + 0.5), f"the backend still streams {WITHIN}s after the client left"
        took = ending.at - gone
        assert took <= WITHIN, f"the backend connection ended {took:.2f}s after the client vanished"
        assert ending.how in ("eof", "reset")
    finally:
        backend.close()


@pytest.mark.parametrize("how", VANISH)
def test_client_vanishing_mid_tunnel_closes_the_backend_within_a_second(via, how):
    target = StreamTarget("echo", http_upgrade=True)
    try:
        wire = via.connect()
        wire.send(via.head("GET", target.port, "ws", b"Connection: Upgrade", b"Upgrade: websocket",
                           b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="))
        assert wire.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        wire.send(b"x" * 100_000)
        assert len(wire.read_exact(100_000)) == 100_000  # the tunnel works both ways
        gone = vanish(wire, how)
        rec = target.wait(0, timeout=WITHIN + 0.5)
        took = time.monotonic() - gone
        assert took <= WITHIN + 0.1, f"the tunnel's backend side ended {took:.2f}s after the client vanished"
        assert rec.ended in ("eof", "reset") and rec.nbytes == 100_000
    finally:
        target.close()
