"""Different kinds of backends behind the real proxy process.

HTTP/1.0 servers (no keep-alive, close-delimited bodies), HTTP/1.1 servers that
close, or close idle keep-alive connections without saying so, a server bound
only to the IPv6 loopback, and two real server programs in child processes
(``python -m http.server`` and ``twistd web``).  Each is checked for exact
bodies and for what happens to the client connection and the backend
connections afterwards.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ID
from tests.support.backends import HttpServerProcess, RecordingBackend, ScriptedBackend, simple_response
from tests.support.leaks import Baseline, remote_ports
from tests.support.procs import ProxyProcess, child_env, free_port, wait_for_port
from tests.support.waiting import wait_until
from tests.support.wire import Wire, connect, get, read_head, read_request_body, read_response

PID = PROJECT_ID.encode()


@pytest.fixture(scope="module")
def proxy():
    p = ProxyProcess("project", ["--project-id", PROJECT_ID])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def baseline(proxy) -> Baseline:
    assert get(proxy.port, f"/{PROJECT_ID}/healthz").status == 200
    return Baseline.settle(proxy)


def request_bytes(port: int, tail: bytes, method: bytes = b"GET", version: bytes = b"HTTP/1.1", body: bytes = b"") -> bytes:
    length = b"Content-Length: %d\r\n" % len(body) if body or method == b"POST" else b""
    return b"%s /%s/server/%d%s %s\r\nHost: x\r\n%s\r\n%s" % (method, PID, port, tail, version, length, body)


def one_request_per_connection(respond):
    """A backend that reads one request, writes ``respond(head, body)`` and closes."""
    def script(conn, number):
        wire = Wire(conn)
        head = read_head(wire)
        body = read_request_body(wire, head)
        conn.sendall(respond(head, body))
        conn.shutdown(socket.SHUT_WR)
        wire.read_to_eof()  # linger until the proxy closes too
    return script


def test_http10_backend_content_length_no_keep_alive(proxy, baseline):
    """Every request gets a fresh backend connection; the client's stays open."""
    seen = []

    def respond(head, body):
        seen.append((head.start_line, body))
        return b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"

    with ScriptedBackend(one_request_per_connection(respond)) as backend:
        wire = connect(proxy.port)
        for i in range(3):
            wire.sock.sendall(request_bytes(backend.port, b"/r%d" % i, b"POST", body=b"body%d" % i))
            _, head, body = read_response(wire)
            assert head.start_line == b"HTTP/1.1 200 OK"  # our version (RFC 9110 §2.5)
            assert head.get(b"connection") is None  # the client's connection stays keep-alive
            assert body == b"hello"
        assert not wire.closed_within(0.2)
        wire.sock.close()
        assert backend.accepted == 3
    assert seen == [(b"POST /r%d HTTP/1.1" % i, b"body%d" % i) for i in range(3)]
    baseline.assert_reached(proxy, what="after an HTTP/1.0 backend")


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/1.1"])
def test_close_delimited_response_reaches_client_then_closes(proxy, baseline, version):
    payload = os.urandom(5 << 20)

    def respond(head, body):
        return version + b" 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + payload

    with ScriptedBackend(one_request_per_connection(respond)) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(request_bytes(backend.port, b"/close-delimited"))
        head = read_head(wire)
        assert head.start_line == b"HTTP/1.1 200 OK"  # our version, whatever the backend speaks
        assert head.get(b"connection") == b"close"
        assert head.get(b"content-length") is None and head.get(b"transfer-encoding") is None
        assert wire.read_to_eof() == payload  # the body, then the connection's end
        wire.sock.close()
    baseline.assert_reached(proxy, what="after a close-delimited response")


def test_http10_client_and_close_delimited_backend(proxy):
    def respond(head, body):
        return b"HTTP/1.0 200 OK\r\n\r\nold-style body"

    with ScriptedBackend(one_request_per_connection(respond)) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(request_bytes(backend.port, b"/x", version=b"HTTP/1.0"))
        head = read_head(wire)
        assert head.status == 200
        assert wire.read_to_eof() == b"old-style body"
        wire.sock.close()


def test_backend_connection_close_is_not_reused(proxy, baseline):
    def respond(head, body):
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye"

    with ScriptedBackend(one_request_per_connection(respond)) as backend:
        wire = connect(proxy.port)
        for i in range(2):
            wire.sock.sendall(request_bytes(backend.port, b"/c%d" % i))
            _, head, body = read_response(wire)
            assert (head.status, body) == (200, b"bye")
            assert head.get(b"connection") is None  # hop-by-hop: the backend's close is not the client's
        wire.sock.close()
        assert backend.accepted == 2
    baseline.assert_reached(proxy, what="after Connection: close from the backend")


def test_backend_silently_closing_idle_keep_alive_connections(proxy, baseline):
    """The backend promises keep-alive but closes right after each response: the
    next request must still succeed (a new connection, or a safe retry)."""
    def respond(head, body):
        return b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + head.target[-6:]

    with ScriptedBackend(one_request_per_connection(respond)) as backend:
        wire = connect(proxy.port)
        for i in range(20):
            wire.sock.sendall(request_bytes(backend.port, b"/req%03d" % i))
            _, head, body = read_response(wire)
            assert (head.status, body) == (200, b"req%03d" % i)
        wire.sock.close()
        assert backend.accepted >= 20
    baseline.assert_reached(proxy, what="after a backend closing idle connections")


def test_ipv6_only_backend_reached_via_localhost(proxy):
    with RecordingBackend(host="::1", family=socket.AF_INET6) as backend:
        for kind in ("server", "port"):
            a = get(proxy.port, f"/{PROJECT_ID}/{kind}/{backend.port}/v6")
            assert (a.status, a.body) == (200, b"ok")
        assert [r.target for r in backend.wait_requests(2)] == [
            b"/v6", f"/{PROJECT_ID}/port/{backend.port}/v6".encode()]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    data = os.urandom(20 << 20)
    (root / "big.bin").write_bytes(data)
    (root / "small.txt").write_bytes(b"small file\n")
    return root, data


def test_python_http_server_large_file(proxy, baseline, files):
    root, data = files
    server = HttpServerProcess(str(root))
    try:
        wire = connect(proxy.port)
        wire.sock.sendall(request_bytes(server.port, b"/big.bin"))
        _, head, body = read_response(wire)
        assert head.status == 200
        assert head.content_length == len(data)
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        wire.sock.sendall(request_bytes(server.port, b"/small.txt", b"HEAD"))
        _, head, body = read_response(wire, b"HEAD")
        assert (head.status, head.content_length, body) == (200, 11, b"")
        wire.sock.close()
    finally:
        server.close()
    baseline.assert_reached(proxy, what="after python -m http.server")


@pytest.fixture
def twisted_web(files):
    """``twistd -n web --path DIR``: a real keep-alive HTTP/1.1 server."""
    root, _ = files
    port = free_port()
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    proc = subprocess.Popen([twistd, "-n", "--pidfile=", "web", "--path", str(root), "--listen",
                             f"tcp:{port}:interface=127.0.0.1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=child_env(), cwd=str(root), start_new_session=True)
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_twisted_web_keep_alive_range_and_head(proxy, baseline, twisted_web, files):
    _, data = files
    wire = connect(proxy.port)
    base = b"/%s/server/%d" % (PID, twisted_web)
    wire.sock.sendall(b"GET %s/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-1999\r\n\r\n" % base)
    _, head, body = read_response(wire)
    assert head.status == 206
    assert body == data[1000:2000]
    wire.sock.sendall(b"HEAD %s/big.bin HTTP/1.1\r\nHost: x\r\n\r\n" % base)
    _, head, body = read_response(wire, b"HEAD")
    assert (head.status, head.content_length, body) == (200, len(data), b"")
    wire.sock.sendall(b"GET %s/big.bin HTTP/1.1\r\nHost: x\r\n\r\n" % base)
    _, head, body = read_response(wire)
    assert head.status == 200 and body == data
    wire.sock.sendall(b"GET %s/missing HTTP/1.1\r\nHost: x\r\n\r\n" % base)
    _, head, body = read_response(wire)
    assert head.status == 404
    wire.sock.close()
    # What is left is one idle keep-alive connection to twistd web, kept for reuse.
    assert wait_until(lambda: remote_ports(proxy.pid) == [twisted_web], 5), remote_ports(proxy.pid)


def test_backend_answering_before_reading_the_upload(proxy, baseline):
    """A backend may answer before the request body has arrived (here: refuse a
    large upload at once).  The client gets that answer and the connection
    closes, since the rest of its request can no longer be framed for anyone."""
    def early(conn, number):
        wire = Wire(conn)
        read_head(wire)
        conn.sendall(simple_response(413, b"too large"))
        wire.closed_within(10)  # the proxy drops this connection (its request is incomplete)

    with ScriptedBackend(early) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"POST /%s/server/%d/up HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"
                          % (PID, backend.port) + b"u" * 65536)
        _, head, body = read_response(wire)
        assert (head.status, body) == (413, b"too large")
        assert head.get(b"connection") == b"close"
        assert wire.closed_within(5)
        wire.sock.close()
    baseline.assert_reached(proxy, what="after an early answer")
