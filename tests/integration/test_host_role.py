"""The ``host`` role as a real process (SPEC §5): registry, hub secret, mutual TLS.

The "container proxy" behind it is the app backend itself (the host forwards
the path unchanged to 127.0.0.1:<http_port>), so the test sees exactly what
the host forwards.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time

import pytest
from websockets.sync.client import connect as ws_connect

from tests.support.certs import TestPKI
from tests.support.chain import host_registry
from tests.support.procs import ProxyProcess, run_twistd
from tests.support.wsecho import WebSocketEchoServer

PID = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
PID2 = "aaaaaaaa-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SECRET = "the-hub-secret"


@pytest.fixture(scope="module")
def host(tmp_path_factory, app):
    d = tmp_path_factory.mktemp("host")
    registry = d / "registry.sqlite3"
    host_registry(registry, [(PID, "running", app.port)])
    secret = d / "secret"
    secret.write_text(f"# rotation: the new secret first\n{SECRET}\nold-secret\n")
    p = ProxyProcess("host", ["--registry", str(registry), "--hub-secret-file", str(secret)])
    p.registry = registry
    yield p
    p.stop()


def request(port: int, raw: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return int(lines[0].split()[1]), headers, body


def get(port: int, path: str, *headers: str) -> tuple[int, dict, bytes]:
    extra = "".join(h + "\r\n" for h in headers)
    return request(port, f"GET {path} HTTP/1.1\r\nHost: hub.example\r\nConnection: close\r\n{extra}\r\n".encode())


def wait_status(port, path, status, *headers, timeout=2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get(port, path, *headers)[0] == status:
            return True
        time.sleep(0.05)
    return False


def test_the_hub_secret_is_required_and_never_forwarded(host, app):
    path = f"/{PID}/headers?x=1"
    assert get(host.port, path)[0] == 403
    assert get(host.port, path, "X-CoCalc-Hub-Secret: wrong")[0] == 403
    assert get(host.port, path, f"X-CoCalc-Hub-Secret: {SECRET}", f"X-CoCalc-Hub-Secret: {SECRET}")[0] == 403
    for secret in (SECRET, "old-secret"):  # every line of the file is accepted (rotation)
        status, _, body = get(host.port, path, f"X-CoCalc-Hub-Secret: {secret}",
                              "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https")
        assert status == 200
        doc = json.loads(body)
        assert doc["path"] == path  # unchanged
        headers = {k.lower(): v for k, v in doc["headers"]}
        assert "x-cocalc-hub-secret" not in headers
        # a valid secret makes the hub's X-Forwarded-* believed, the peer appended
        assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
        assert headers["x-forwarded-proto"] == "https"
    assert get(host.port, "/healthz")[:1] == (200,)  # load balancers hold no secret


def test_registry_routes_and_changes_within_a_second(host, app):
    ok = f"X-CoCalc-Hub-Secret: {SECRET}"
    assert get(host.port, f"/{PID2}/", ok)[0] == 404
    assert get(host.port, "/not-a-project/", ok)[0] == 404
    host_registry(host.registry, [(PID, "running", app.port), (PID2, "running", app.port)])
    assert wait_status(host.port, f"/{PID2}/x", 200, ok, timeout=1.0)
    host_registry(host.registry, [(PID, "running", app.port), (PID2, "stopped", None)])
    assert wait_status(host.port, f"/{PID2}/x", 503, ok, timeout=1.0)
    status, headers, _ = get(host.port, f"/{PID2}/x", ok)
    assert headers["retry-after"] == "5"
    host_registry(host.registry, [(PID, "running", app.port)])


def test_a_replaced_or_missing_registry_file_keeps_the_last_snapshot(host, app):
    ok = f"X-CoCalc-Hub-Secret: {SECRET}"
    os.rename(host.registry, str(host.registry) + ".away")
    try:
        time.sleep(0.7)
        assert get(host.port, f"/{PID}/x", ok)[0] == 200
    finally:
        os.rename(str(host.registry) + ".away", host.registry)
    fresh = str(host.registry) + ".new"
    host_registry(fresh, [(PID, "running", app.port), (PID2, "running", app.port)])
    os.replace(fresh, host.registry)
    assert wait_status(host.port, f"/{PID2}/x", 200, ok, timeout=1.0)
    host_registry(host.registry, [(PID, "running", app.port)])


def test_websocket_through_the_host(tmp_path):
    echo = WebSocketEchoServer()
    registry = tmp_path / "r.sqlite3"
    host_registry(registry, [(PID, "running", echo.port)])
    try:
        with ProxyProcess("host", ["--registry", str(registry)]) as host:
            with ws_connect(f"ws://127.0.0.1:{host.port}/{PID}/ws") as ws:
                ws.send("hi")
                assert ws.recv(timeout=10) == "hi"
            assert echo.sessions[-1].path == f"/{PID}/ws"
    finally:
        echo.close()


def test_mutual_tls_requires_a_client_certificate_from_the_ca(tmp_path, app):
    pki, stranger = TestPKI(tmp_path / "pki"), TestPKI(tmp_path / "other", cn="another CA")
    server, client, wrong = pki.server(), pki.client(), stranger.client()
    registry = tmp_path / "r.sqlite3"
    host_registry(registry, [(PID, "running", app.port)])
    args = ["--registry", str(registry), "--https-key", server.key, "--https-cert", server.cert, "--client-ca", pki.ca]
    with ProxyProcess("host", args) as host:
        def fetch(pair):
            ctx = ssl.create_default_context(cafile=pki.ca)
            if pair is not None:
                ctx.load_cert_chain(pair.cert, pair.key)
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", host.port), timeout=10),
                                 server_hostname="localhost") as s:
                s.sendall(f"GET /{PID}/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode())
                return s.recv(100)

        assert fetch(client).startswith(b"HTTP/1.1 200 ")
        for pair in (None, wrong):
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                data = fetch(pair)
                if not data:  # TLS 1.3: the refusal can arrive as an alert on the first read
                    raise ssl.SSLError("closed")


def test_host_options_errors(tmp_path):
    r = run_twistd(["host", "--listen", "tcp:0:interface=127.0.0.1"])
    assert r.returncode == 2 and "--registry is required" in r.stderr
    (tmp_path / "r").write_text("not sqlite")
    r = run_twistd(["host", "--registry", str(tmp_path / "r")])
    assert r.returncode == 2 and f"--registry {tmp_path / 'r'}" in r.stderr
    registry = tmp_path / "ok.sqlite3"
    host_registry(registry, [])
    r = run_twistd(["host", "--registry", str(registry), "--client-ca", str(registry)])
    assert r.returncode == 2 and "--client-ca needs --https-key" in r.stderr
    (tmp_path / "empty").write_text("\n")
    r = run_twistd(["host", "--registry", str(registry), "--hub-secret-file", str(tmp_path / "empty")])
    assert r.returncode == 2 and "holds no secret" in r.stderr
