"""Limits, slow clients, path tricks, reflected input, TLS misuse and upgrade
credentials — against every role, live (issue: hardening)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.support.live_roles import HEADER_TIMEOUT, PROJECT, ROLE_NAMES, LiveRoles, send, status_of
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    roles = LiveRoles(tmp_path_factory.mktemp("live"))
    yield roles
    roles.close()


def fds_settle(role, baseline: int, timeout: float = 10.0) -> bool:
    return wait_until(lambda: role.proxy.fd_count() <= baseline, timeout)


# ------------------------------------------------------------------ limits

@pytest.mark.parametrize("name", ROLE_NAMES)
def test_request_line_over_8k_is_414_and_head_over_the_limit_431(live, name):
    role = live[name]
    before = live.reached()
    long_target = role.path("a" * 9000).encode()
    data, closed = send(role, role.wrap(b"GET " + long_target + b" HTTP/1.1"))
    assert status_of(data) == 414 and closed
    big = [b"X-Filler-%d: %s" % (i, b"v" * 1000) for i in range(70)]  # ~70 KiB of headers
    data, closed = send(role, role.wrap(b"GET " + role.path("x").encode() + b" HTTP/1.1", *big))
    assert status_of(data) == 431 and closed
    assert live.reached() == before


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_a_slow_head_gets_408_after_the_header_timeout(live, name):
    role = live[name]
    sock = role.connect()
    try:
        started = time.monotonic()
        sock.sendall(b"GET " + role.path("slow").encode() + b" HTTP/1.1\r\nHo")
        sock.settimeout(HEADER_TIMEOUT + 5)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        took = time.monotonic() - started
    finally:
        sock.close()
    assert status_of(data) == 408
    assert HEADER_TIMEOUT - 0.5 <= took <= HEADER_TIMEOUT + 2.5


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_slowloris_trickle_and_half_open_connections_do_not_stop_others(live, name):
    role = live[name]
    good = role.good() if role.forwards else b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    send(role, good)  # the backend connection is pooled from here on: part of the baseline
    baseline = role.proxy.fd_count()
    held = []
    stop = threading.Event()

    def trickle(sock):
        head = b"GET " + role.path("t").encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: "
        try:
            for b in head:
                if stop.is_set():
                    return
                sock.sendall(bytes([b]))
                time.sleep(0.05)
            while not stop.is_set():
                sock.sendall(b"a")
                time.sleep(0.2)
        except OSError:
            return

    threads = []
    for i in range(60):
        sock = role.connect()
        held.append(sock)
        if i % 2 == 0:  # half of them trickle, half only connect and say nothing
            t = threading.Thread(target=trickle, args=(sock,), daemon=True)
            t.start()
            threads.append(t)
    try:
        started = time.monotonic()
        data, _ = send(role, good)
        assert status_of(data) == 200 and time.monotonic() - started < 2
        # the header timeout ends every one of them, trickling or silent (over TLS a
        # client that never answers our close_notify is cut a linger timeout later)
        assert wait_until(lambda: role.proxy.tcp_connections() <= 2, HEADER_TIMEOUT + 12), role.proxy.tcp_connections()
    finally:
        stop.set()
        for s in held:
            s.close()
        for t in threads:
            t.join(5)
    assert fds_settle(role, baseline)


# ------------------------------------------------------------- path tricks

TRICKS = ["..", "%2e%2e", "%2E.", ".%2e", ".", "%2e", "a%2f..%2fb", "..%2f", "%2f%2e%2e"]


@pytest.mark.parametrize("trick", TRICKS)
@pytest.mark.parametrize("name", ROLE_NAMES)
def test_dot_segments_and_encoded_slashes_in_every_prefix(live, name, trick):
    role = live[name]
    before = live.reached()
    for path in (role.prefix + trick + "/x", "/" + trick + role.prefix + "x", role.prefix.rstrip("/") + trick):
        data, _ = send(role, role.wrap(b"GET " + path.encode() + b" HTTP/1.1", b"Connection: close"))
        status = status_of(data)
        assert status in (400, 404), (path, data[:200])
    assert live.reached() == before


@pytest.mark.parametrize("segment", ["%2f", "%2F"])
def test_an_encoded_slash_in_the_project_id_segment_is_400(live, segment):
    for name in ("host", "hub"):
        role = live[name]
        path = f"/{PROJECT[:8]}{segment}{PROJECT[9:]}/x"
        data, _ = send(role, role.wrap(b"GET " + path.encode() + b" HTTP/1.1", b"Connection: close"))
        assert status_of(data) in (400, 404)


@pytest.mark.parametrize("hostpart, status", [
    ("user@localhost:80", 404), ("user:pw@127.0.0.1:80", 404), ("localhost", 404), ("localhost:", 404),
    ("localhost:http", 404), ("localhost:0", 404), ("localhost:70000", 404), ("evil.example:80", 403),
    ("[::1]:80", 403), ("[::1", 404), ("127.0.0.1%2f:80", 400), ("a b:80", 400),
])
def test_proxy_host_routes_refuse_userinfo_and_missing_ports(live, hostpart, status):
    role = live["project"]
    before = live.reached()
    data, _ = send(role, b"GET /proxy/" + hostpart.encode() + b"/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(data) == status, data[:200]
    assert live.reached() == before
    if b"@" in hostpart.encode():
        assert b"user" not in data  # the userinfo is never echoed


# ------------------------------------------------------- reflected input

@pytest.mark.parametrize("name", ROLE_NAMES)
def test_error_pages_never_reflect_unescaped_input(live, name):
    role = live[name]
    for path in ("/<script>alert(1)</script>/x", "/%3Cscript%3E/../x", "/proxy/<b>:80/",
                 "/proxy/evil.example:80/<i>", role.prefix + "x/../<svg onload=1>"):
        for accept in (b"text/html", b"application/json"):
            data, _ = send(role, role.wrap(b"GET " + path.encode() + b" HTTP/1.1", b"Accept: " + accept,
                                           b"Connection: close"))
            status = status_of(data)
            if status == 200:
                continue  # reached the backend: its business (the host and hub forward any project path)
            body = data.partition(b"\r\n\r\n")[2]
            for raw in (b"<script>", b"<b>", b"<i>", b"<svg"):
                assert raw not in body, (path, body[:300])


# ------------------------------------------------------- TLS on the hub

def test_plain_http_and_garbage_on_the_tls_port(live):
    hub = live["hub"]
    baseline = hub.proxy.fd_count()
    for payload in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello",
                    bytes(range(256)) * 4, b"\x16\x03\x03" + b"\xff" * 3000):
        with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as s:
            s.sendall(payload)
            s.settimeout(5)
            try:
                data = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                data = b""
            assert not data.startswith(b"HTTP/1.1 200")
    data, _ = send(hub, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.endswith(b"ok\n")
    assert fds_settle(hub, baseline)


@pytest.mark.parametrize("credential, status", [
    (None, 401), (b"Cookie: remember_me=forged", 401), (b"Authorization: Bearer forged", 401),
    (b"Authorization: Basic Zm9yZ2VkOg==", 401), (b"Cookie: api_key=", 401),
])
def test_websocket_upgrades_without_good_credentials_are_refused_on_the_hub(live, credential, status):
    hub = live["hub"]
    before = live.reached()
    headers = [b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
               b"Sec-WebSocket-Version: 13"] + ([credential] if credential else [])
    raw = b"GET /" + PROJECT.encode() + b"/ws HTTP/1.1\r\nHost: x\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    data, _ = send(hub, raw, timeout=3)
    assert status_of(data) == status and b"101" not in data.split(b"\r\n")[0]
    assert live.reached() == before
