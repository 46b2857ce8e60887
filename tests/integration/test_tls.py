"""TLS on every role (SPEC §2): real certificates made by the test, real clients.

Startup errors name the file; TLS 1.2 is the minimum; ALPN says http/1.1; the
certificate file's chain is sent; SIGHUP swaps key and certificate for new
connections and keeps the open ones (a broken file keeps the old ones);
X-Forwarded-Proto is https; WebSockets and tunnels over TLS lose no byte.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import ssl
import time

import pytest
from websockets.sync.client import connect as ws_connect

from tests.support.app_backend import AppBackend
from tests.support.certs import TestPKI
from tests.support.procs import ProxyProcess, run_twistd
from tests.support.sinks import StreamTarget, pattern
from tests.support.wsecho import WebSocketEchoServer


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("pki"))


def tls_args(pair) -> list[str]:
    return ["--https-key", pair.key, "--https-cert", pair.cert]


def context(pki, **kw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def get(port: int, ctx: ssl.SSLContext, path: str = "/healthz", sock: ssl.SSLSocket | None = None):
    """One GET on ``sock`` (or a new connection); returns (status line, body, socket)."""
    if sock is None:
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n")[0], body, sock


@pytest.mark.parametrize("kind, message", [
    ("encrypted", "the key is encrypted"),
    ("mismatched", "does not match the certificate"),
    ("missing", "cannot read it: No such file or directory"),
    ("not pem", "not a PEM private key"),
    ("no cert", "holds no PEM certificate"),
    ("half", "--https-key and --https-cert go together"),
])
def test_bad_tls_files_are_one_line_startup_errors_naming_the_file(pki, tmp_path, kind, message):
    good = pki.server()
    if kind == "encrypted":
        pair = pki.encrypted()
        args = tls_args(pair)
    elif kind == "mismatched":
        pair = pki.mismatched()
        args = tls_args(pair)
    elif kind == "missing":
        args = ["--https-key", str(tmp_path / "nope.key"), "--https-cert", good.cert]
    elif kind == "not pem":
        args = ["--https-key", good.cert, "--https-cert", good.cert]
    elif kind == "no cert":
        empty = tmp_path / "empty.crt"
        empty.write_text("nothing here\n")
        args = ["--https-key", good.key, "--https-cert", str(empty)]
    else:
        args = ["--https-key", good.key]
    r = run_twistd(["project", "--listen", "tcp:0:interface=127.0.0.1", *args])
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    if kind not in ("half",):
        assert args[1] in r.stderr or args[3] in r.stderr  # the file is named


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_minimum_version_alpn_chain_and_forwarded_proto(pki):
    app = AppBackend()
    pair = pki.intermediate_server()
    with ProxyProcess("project", tls_args(pair)) as proxy:
        old = context(pki, maximum_version=ssl.TLSVersion.TLSv1_1, minimum_version=ssl.TLSVersion.TLSv1)
        with pytest.raises(ssl.SSLError):
            get(proxy.port, old)
        ctx = context(pki)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        status, body, sock = get(proxy.port, ctx)  # verifies only if the intermediate is sent
        assert (status, body) == (b"HTTP/1.1 200 OK", b"ok\n")
        assert sock.selected_alpn_protocol() == "http/1.1" and sock.version() in ("TLSv1.2", "TLSv1.3")
        status, body, _ = get(proxy.port, ctx, f"/server/{app.port}/headers", sock)
        headers = {k.lower(): v for k, v in __import__("json").loads(body)["headers"]}
        assert headers["x-forwarded-proto"] == "https"
        sock.close()
    app.close()


def _serial(sock: ssl.SSLSocket) -> str:
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def test_sighup_swaps_the_certificate_for_new_connections_and_keeps_open_ones(pki, tmp_path):
    first, second = pki.server(), pki.server()
    key, cert = tmp_path / "live.key", tmp_path / "live.crt"
    shutil.copy(first.key, key)
    shutil.copy(first.cert, cert)
    with ProxyProcess("project", ["--https-key", str(key), "--https-cert", str(cert)]) as proxy:
        ctx = context(pki)
        _, _, old = get(proxy.port, ctx)
        before = _serial(old)
        shutil.copy(second.key, key)
        shutil.copy(second.cert, cert)
        os.kill(proxy.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while True:
            _, _, new = get(proxy.port, ctx)
            if _serial(new) != before or time.monotonic() > deadline:
                break
            new.close()
            time.sleep(0.05)
        assert _serial(new) != before, "SIGHUP did not load the new certificate"
        assert get(proxy.port, ctx, sock=old)[1] == b"ok\n"  # the open connection still works
        # a broken pair is refused and the current one stays
        shutil.copy(first.key, key)  # now the key does not match the certificate
        os.kill(proxy.pid, signal.SIGHUP)
        time.sleep(0.3)
        _, _, third = get(proxy.port, ctx)
        assert _serial(third) == _serial(new)
        assert "SIGHUP: reloading TLS key and certificate failed" in proxy.log_text()
        for s in (old, new, third):
            s.close()


def test_websocket_tunnel_and_bridge_over_tls(pki):
    pair = pki.server()
    echo = WebSocketEchoServer()
    target = StreamTarget("read")
    try:
        with ProxyProcess("project", tls_args(pair)) as proxy, \
                ProxyProcess("bridge", ["--target", target.address, *tls_args(pair)]) as bridge:
            url = f"wss://localhost:{proxy.port}/server/{echo.port}/ws"
            with ws_connect(url, ssl=context(pki), max_size=None) as ws:
                data = pattern(3 << 20)
                ws.send(data)
                assert ws.recv(timeout=30) == data
            with ws_connect(f"wss://localhost:{bridge.port}/", ssl=context(pki), max_size=None) as ws:
                data = pattern(2 << 20, seed=5)
                for i in range(0, len(data), 50_000):
                    ws.send(data[i:i + 50_000])
            got = target.wait(timeout=30)
            assert (got.nbytes, got.sha(), got.ended) == (len(data), hashlib.sha256(data).hexdigest(), "eof")
    finally:
        echo.close()
        target.close()


def test_tls_tunnel_client_close_loses_nothing(pki):
    """Over TLS there is no half-close: the client's close_notify ends its side;
    the target still gets every byte, then a FIN (never an RST)."""
    pair = pki.server()
    target = StreamTarget("read", http_upgrade=True)
    try:
        with ProxyProcess("project", tls_args(pair)) as proxy:
            sock = context(pki).wrap_socket(socket.create_connection(("127.0.0.1", proxy.port), timeout=30),
                                            server_hostname="localhost")
            sock.sendall(b"GET /port/%d/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                         % target.port)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 101 ")
            data = pattern(4 << 20, seed=9)
            for i in range(0, len(data), 50_000):
                sock.sendall(data[i:i + 50_000])
            try:
                sock.unwrap()  # close_notify
            except (ssl.SSLError, OSError):
                pass
            sock.close()
            got = target.wait(timeout=30)
            assert (got.nbytes, got.sha(), got.ended) == (len(data), hashlib.sha256(data).hexdigest(), "eof")
    finally:
        target.close()
