"""Bodies stream with backpressure: the proxy's memory does not grow with the body.

256 MiB go through the real proxy process in each direction while the receiving
side stalls for a while first; the proxy's resident set size is sampled all
along and must stay within ``GROWTH_LIMIT`` of what it was before (the benchmark
holds the tighter target; this proves "bounded, not body-sized").  The bytes
are checked end to end (count and SHA-256), and the sender's progress while the
receiver stalled shows the stall reached all the way back to it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest

from tests.conftest import PROJECT_ID
from tests.support.backends import ScriptedBackend, simple_response
from tests.support.memory import RssSampler
from tests.support.procs import ProxyProcess
from tests.support.wire import Wire, connect, get, iter_chunks, read_head, read_response

pytestmark = pytest.mark.slow

PID = PROJECT_ID.encode()
SIZE = 256 << 20
BLOCK_SIZE = 1 << 20
BLOCKS = SIZE // BLOCK_SIZE
STALL = 2.0
GROWTH_LIMIT_KIB = 32 * 1024
#: While the receiver stalls, only kernel socket buffers (two hops, each side's
#: send and receive buffers) may hold the sender's bytes; far less than the body.
STALLED_PROGRESS_LIMIT = 64 << 20

_BASE = os.urandom(BLOCK_SIZE)


def block(i: int) -> bytes:
    """Block ``i`` of the body: distinct per index, so reordering changes the hash."""
    return i.to_bytes(8, "big") + _BASE[8:]


def body_digest() -> str:
    h = hashlib.sha256()
    for i in range(BLOCKS):
        h.update(block(i))
    return h.hexdigest()


DIGEST = body_digest()


@pytest.fixture(scope="module")
def proxy():
    p = ProxyProcess("project", ["--project-id", PROJECT_ID])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def warm_proxy(proxy):
    """Run one small transfer of each kind first, so the baseline RSS already
    includes what the first relay allocates once (imports, pools)."""
    def echo(conn, number):
        wire = Wire(conn)
        head = read_head(wire)
        data = wire.read_exact(int(head.get(b"content-length")))
        conn.sendall(simple_response(200, data))

    with ScriptedBackend(echo) as backend:
        wire = connect(proxy.port)
        payload = os.urandom(4 << 20)
        wire.sock.sendall(b"POST /%s/server/%d/warm HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                          % (PID, backend.port, len(payload)) + payload)
        _, head, body = read_response(wire)
        wire.sock.close()
    assert head.status == 200 and body == payload
    assert get(proxy.port, f"/{PROJECT_ID}/healthz").status == 200
    return proxy


def drain_counting(wire: Wire, size: int, hasher) -> int:
    """Read exactly ``size`` body bytes (buffered first), hashing them; returns the count."""
    got = 0
    if wire.buf:
        first = bytes(wire.buf[:size])
        del wire.buf[: len(first)]
        hasher.update(first)
        got = len(first)
    view = bytearray(BLOCK_SIZE)
    while got < size:
        n = wire.sock.recv_into(view, min(BLOCK_SIZE, size - got))
        if not n:
            break
        hasher.update(memoryview(view)[:n])
        got += n
    return got


def assert_bounded(sampler: RssSampler, base_kib: int) -> None:
    growth = sampler.peak_kib - base_kib
    assert len(sampler.samples) > 50, "too few RSS samples to judge"
    assert growth < GROWTH_LIMIT_KIB, f"proxy RSS grew by {growth} KiB (base {base_kib} KiB) for a {SIZE >> 20} MiB body"


class StalledSink:
    """A backend that reads the request head, stalls, then reads the whole body
    and answers with the byte count and SHA-256 it got."""

    def __init__(self, chunked: bool) -> None:
        self.chunked = chunked
        self.stall_over = threading.Event()
        self.backend = ScriptedBackend(self.script)
        self.port = self.backend.port

    def script(self, conn: socket.socket, number: int) -> None:
        wire = Wire(conn, timeout=30)
        head = read_head(wire)
        time.sleep(STALL)  # deliberately not reading: the proxy must stop reading the client
        self.stall_over.set()
        h = hashlib.sha256()
        if self.chunked:
            count = 0
            for data in iter_chunks(wire):
                h.update(data)
                count += len(data)
        else:
            count = drain_counting(wire, int(head.get(b"content-length")), h)
        conn.sendall(simple_response(200, b"%d %s" % (count, h.hexdigest().encode())))

    def close(self) -> None:
        self.backend.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_to_stalled_backend_is_bounded(warm_proxy, framing):
    proxy = warm_proxy
    sink = StalledSink(chunked=framing == "chunked")
    sent = 0
    sent_when_stall_ended = None
    try:
        base = proxy.rss_kib()
        wire = connect(proxy.port, timeout=30)
        length = b"Transfer-Encoding: chunked" if sink.chunked else b"Content-Length: %d" % SIZE
        with RssSampler(proxy.rss_kib) as sampler:
            wire.sock.sendall(b"PUT /%s/server/%d/upload HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n" % (PID, sink.port, length))
            for i in range(BLOCKS):
                data = block(i)
                if sink.chunked:
                    data = b"%x\r\n%s\r\n" % (len(data), data)
                wire.sock.sendall(data)
                sent += len(data)
                if sent_when_stall_ended is None and sink.stall_over.is_set():
                    sent_when_stall_ended = sent
            if sink.chunked:
                wire.sock.sendall(b"0\r\n\r\n")
            if sent_when_stall_ended is None:
                sent_when_stall_ended = sent  # all of it went out while the backend stalled
            _, head, body = read_response(wire)
        wire.sock.close()
    finally:
        sink.close()
    assert (head.status, body) == (200, b"%d %s" % (SIZE, DIGEST.encode()))
    assert_bounded(sampler, base)
    assert sent_when_stall_ended < STALLED_PROGRESS_LIMIT, (
        f"the client could send {sent_when_stall_ended} bytes while the backend read nothing")


def test_download_by_stalled_client_is_bounded(warm_proxy):
    proxy = warm_proxy
    progress = {"sent": 0}

    def source(conn, number):
        conn.settimeout(30)
        Wire(conn, timeout=30).read_until(b"\r\n\r\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % SIZE)
        for i in range(BLOCKS):
            conn.sendall(block(i))
            progress["sent"] += BLOCK_SIZE

    backend = ScriptedBackend(source)
    try:
        base = proxy.rss_kib()
        wire = connect(proxy.port, timeout=30)
        with RssSampler(proxy.rss_kib) as sampler:
            wire.sock.sendall(b"GET /%s/server/%d/download HTTP/1.1\r\nHost: x\r\n\r\n" % (PID, backend.port))
            head = read_head(wire)
            time.sleep(STALL)  # deliberately not reading: the proxy must stop reading the backend
            sent_when_stall_ended = progress["sent"]
            h = hashlib.sha256()
            count = drain_counting(wire, SIZE, h)
        wire.sock.close()
    finally:
        backend.close()
    assert head.status == 200 and head.content_length == SIZE
    assert (count, h.hexdigest()) == (SIZE, DIGEST)
    assert_bounded(sampler, base)
    assert sent_when_stall_ended < STALLED_PROGRESS_LIMIT, (
        f"the backend could send {sent_when_stall_ended} bytes while the client read nothing")
