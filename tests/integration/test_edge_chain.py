"""The three-hop chain end to end on SQLite (SPEC §5, §6): browser → hub (TLS) →
host → project → app, as real processes over loopback.

Checked here: the path passes every hop unchanged; credentials never reach the
app (assert on what the app received); WebSockets cross all hops with the same
authentication as plain requests; every authentication case, on upgrades too;
large uploads and downloads stream with flat memory on every hop; a stopped
project is 503, a dead host 502; the operator tool's changes take effect at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import uuid

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.support.app_backend import big_pattern_sha
from tests.support.chain import PROJECT, Chain
from tests.support.memory import RssSampler
from tests.support.waiting import wait_until
from tests.support.wsecho import WebSocketEchoServer

MiB = 1 << 20


@pytest.fixture(scope="module")
def echo():
    e = WebSocketEchoServer()
    yield e
    e.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("chain"))
    yield c
    c.close()


def new_user(chain: Chain, group: str | None = "collaborator", project: str = PROJECT) -> tuple[str, str]:
    account = chain.admin.add_account(str(uuid.uuid4()), False)
    if group:
        chain.admin.set_member(project, account, group)
    return account, chain.admin.new_secret("remember_me", account, 1)


# ------------------------------------------------------------------ HTTP

def test_get_crosses_three_hops_with_the_path_unchanged(chain, app):
    r = chain.https("GET", chain.backend_url_path(app.port, "headers?q=%2F1"), cookie=chain.cookie())
    assert r.status == 200
    doc = r.json()
    assert doc["path"] == "/headers?q=%2F1"  # server/: the project strips its prefix, nothing else changed


def test_credentials_never_reach_the_app(chain, app):
    before = len(app.seen)
    cookie = f"theme=dark; {chain.cookie()}; api_key=also-ours; lang=en"
    r = chain.https("GET", chain.backend_url_path(app.port, "headers"), cookie=cookie,
                    headers={"X-CoCalc-Hub-Secret": "client-forged"})
    assert r.status == 200
    headers = {k.lower(): v for k, v in app.seen[before]["headers"]}
    assert headers["cookie"] == "theme=dark; lang=en"
    assert "x-cocalc-hub-secret" not in headers and "authorization" not in headers
    assert headers["x-forwarded-proto"] == "https"  # what the hub saw, believed by the host
    key = chain.admin.new_secret("api_keys", chain.owner, None)
    before = len(app.seen)
    r = chain.https("GET", chain.backend_url_path(app.port, "headers"), headers={"Authorization": f"Bearer {key}"})
    assert r.status == 200
    headers = {k.lower(): v for k, v in app.seen[before]["headers"]}
    assert "authorization" not in headers and "cookie" not in headers


def test_keep_alive_connection_serves_many_requests(chain, app):
    import http.client

    conn = http.client.HTTPSConnection("localhost", chain.hub.port, context=chain.context(), timeout=10)
    for i in range(20):
        conn.request("GET", chain.backend_url_path(app.port, f"n{i}"), headers={"Cookie": chain.cookie()})
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"hello from the app")
    conn.close()


# --------------------------------------------------------------- auth cases

def test_no_credentials_is_401_html_for_browsers_json_for_api_clients(chain, app):
    path = chain.backend_url_path(app.port)
    page = chain.https("GET", path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status == 401 and page.header("Content-Type").startswith("text/html")
    assert b"Sign in" in page.body and page.header("WWW-Authenticate") == 'Bearer realm="cocalcproxy"'
    api = chain.https("GET", path, headers={"Accept": "application/json"})
    assert api.status == 401 and api.json()["status"] == 401


@pytest.mark.parametrize("case, status", [
    ("owner", 200), ("collaborator", 200), ("viewer", 403), ("stranger", 403), ("admin", 200), ("banned", 403),
    ("unknown session", 401), ("expired session", 401), ("bearer key", 200), ("basic key", 200),
    ("api_key cookie", 200), ("key for this project", 200), ("key for another project", 403),
    ("expired key", 401),
])
def test_auth_cases_on_plain_requests_and_upgrades(chain, app, echo, case, status):
    headers = {}
    admin = chain.admin
    if case == "owner":
        headers["Cookie"] = chain.cookie()
    elif case in ("collaborator", "viewer", "stranger"):
        _, secret = new_user(chain, None if case == "stranger" else case)
        headers["Cookie"] = chain.cookie(secret)
    elif case in ("admin", "banned"):
        account, secret = new_user(chain, None if case == "admin" else "owner")
        (admin.set_admin if case == "admin" else admin.set_banned)(account, True)
        headers["Cookie"] = chain.cookie(secret)
    elif case == "unknown session":
        headers["Cookie"] = chain.cookie("no-such-session")
    elif case == "expired session":
        account, _ = new_user(chain)
        headers["Cookie"] = chain.cookie(admin.new_secret("remember_me", account, -1 / 86400))
    elif case in ("bearer key", "basic key", "api_key cookie"):
        key = admin.new_secret("api_keys", chain.owner, None)
        if case == "bearer key":
            headers["Authorization"] = f"Bearer {key}"
        elif case == "basic key":
            headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        else:
            headers["Cookie"] = f"api_key={key}"
    elif case in ("key for this project", "key for another project"):
        scope = PROJECT if case == "key for this project" else str(uuid.uuid4())
        headers["Authorization"] = "Bearer " + admin.new_secret("api_keys", chain.owner, None, scope)
    elif case == "expired key":
        headers["Authorization"] = "Bearer " + admin.new_secret("api_keys", chain.owner, -1 / 86400)
    r = chain.https("GET", chain.backend_url_path(app.port), headers=headers)
    assert r.status == status, r.body
    # the same credentials on a WebSocket upgrade get the same answer
    url = f"wss://localhost:{chain.hub.port}{chain.backend_url_path(echo.port, 'ws')}"
    if status == 200:
        with ws_connect(url, ssl=chain.context(), additional_headers=headers, open_timeout=10) as ws:
            ws.send(b"\x00ping")
            assert ws.recv(timeout=10) == b"\x00ping"
    else:
        with pytest.raises(InvalidStatus) as err:
            ws_connect(url, ssl=chain.context(), additional_headers=headers, open_timeout=10)
        assert err.value.response.status_code == status


def test_removed_collaborator_and_revoked_session_take_effect_at_once(chain, app):
    account, secret = new_user(chain)
    path = chain.backend_url_path(app.port)
    assert chain.https("GET", path, cookie=chain.cookie(secret)).status == 200  # now cached for 60 s
    chain.admin.set_member(PROJECT, account, None)
    assert wait_until(lambda: chain.https("GET", path, cookie=chain.cookie(secret)).status == 403, 1.5)
    chain.admin.set_member(PROJECT, account, "collaborator")
    assert wait_until(lambda: chain.https("GET", path, cookie=chain.cookie(secret)).status == 200, 1.5)
    chain.admin.revoke("remember_me", secret, None, None)
    assert wait_until(lambda: chain.https("GET", path, cookie=chain.cookie(secret)).status == 401, 1.5)


# -------------------------------------------------------------- WebSockets

def test_websocket_echo_crosses_every_hop(chain, echo):
    url = f"wss://localhost:{chain.hub.port}{chain.backend_url_path(echo.port, 'ws')}"
    with ws_connect(url, ssl=chain.context(), additional_headers={"Cookie": chain.cookie()}, max_size=None) as ws:
        for size in (1, 1000, 200_000, 2 * MiB):
            payload = hashlib.sha256(b"%d" % size).digest() * (size // 32 + 1)
            ws.send(payload[:size])
            assert ws.recv(timeout=30) == payload[:size]
    session = echo.sessions[-1]
    names = {k.lower() for k, _ in session.headers}
    assert "cookie" not in names and "x-cocalc-hub-secret" not in names


# ------------------------------------------------ large bodies, flat memory

def _rss_growth(procs, action) -> dict[str, int]:
    """Peak RSS during ``action`` minus RSS before it, per process (KiB)."""
    before = {name: p.rss_kib() for name, p in procs.items()}
    samplers = {name: RssSampler(p.rss_kib) for name, p in procs.items()}
    for s in samplers.values():
        s.__enter__()
    try:
        action()
    finally:
        for s in samplers.values():
            s.__exit__(None, None, None)
    return {name: s.peak_kib - before[name] for name, s in samplers.items()}


@pytest.mark.slow
def test_large_download_and_upload_stream_with_flat_memory_on_every_hop(chain, app):
    size = 256 * MiB
    procs = {"hub": chain.hub, "host": chain.host, "project": chain.project}

    def download():
        import http.client

        conn = http.client.HTTPSConnection("localhost", chain.hub.port, context=chain.context(), timeout=120)
        conn.request("GET", chain.backend_url_path(app.port, f"bytes?n={size}"), headers={"Cookie": chain.cookie()})
        r = conn.getresponse()
        digest = hashlib.sha256()
        got = 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            got += len(chunk)
        conn.close()
        assert (r.status, got, digest.hexdigest()) == (200, size, big_pattern_sha(size))

    growth = _rss_growth(procs, download)
    assert all(kib < 16 * 1024 for kib in growth.values()), growth

    def upload():
        import http.client

        block = hashlib.sha256(b"up").digest() * 32768  # 1 MiB
        conn = http.client.HTTPSConnection("localhost", chain.hub.port, context=chain.context(), timeout=120)
        conn.putrequest("PUT", chain.backend_url_path(app.port, "upload"))
        conn.putheader("Cookie", chain.cookie())
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        for _ in range(size // len(block)):
            conn.send(block)
        r = conn.getresponse()
        doc = json.loads(r.read())
        conn.close()
        assert doc["length"] == size and doc["sha256"] == hashlib.sha256(block * (size // len(block))).hexdigest()

    growth = _rss_growth(procs, upload)
    assert all(kib < 16 * 1024 for kib in growth.values()), growth


# ----------------------------------------------------- placement and faults

def test_stopped_project_is_503_and_placing_it_again_works(chain, app):
    path = chain.backend_url_path(app.port)
    chain.admin.place(PROJECT, None)
    assert wait_until(lambda: chain.https("GET", path, cookie=chain.cookie()).status == 503, 1.5)
    r = chain.https("GET", path, cookie=chain.cookie())
    assert r.header("Retry-After") == "5" and b"not running" in r.body
    chain.admin.place(PROJECT, "h1")
    assert wait_until(lambda: chain.https("GET", path, cookie=chain.cookie()).status == 200, 1.5)


def test_host_that_does_not_answer_is_502(chain, app):
    from tests.support.procs import free_port

    chain.admin.add_host("dead", f"http://127.0.0.1:{free_port()}")
    chain.admin.place(PROJECT, "dead")
    try:
        path = chain.backend_url_path(app.port)
        assert wait_until(lambda: chain.https("GET", path, cookie=chain.cookie()).status == 502, 1.5)
    finally:
        chain.admin.place(PROJECT, "h1")
    assert wait_until(lambda: chain.https("GET", chain.backend_url_path(app.port), cookie=chain.cookie()).status == 200,
                    1.5)


def test_plain_http_to_the_tls_port_and_tls_garbage_are_refused_cleanly(chain):
    import socket

    with socket.create_connection(("127.0.0.1", chain.hub.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            data = s.recv(100)
        except (ConnectionResetError, TimeoutError):
            data = b""
        assert not data.startswith(b"HTTP/1.1 200")
    r = chain.https("GET", "/healthz")
    assert (r.status, r.body) == (200, b"ok\n")  # still healthy


def test_hub_healthz_and_unknown_paths(chain):
    assert chain.https("GET", "/healthz").body == b"ok\n"
    assert chain.https("GET", "/static/app.js", cookie=chain.cookie()).status == 404


def test_the_hub_certificate_is_verified_and_an_unknown_ca_is_refused(chain):
    untrusted = ssl.create_default_context()  # the system store does not know the test CA
    import http.client

    conn = http.client.HTTPSConnection("localhost", chain.hub.port, context=untrusted, timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/healthz")
    conn.close()


def test_a_base_url_prefixes_the_cookie_names_on_every_hop(tmp_path, app):
    """``--base-url /cc/`` on all roles: paths pass unchanged, the session cookie is
    ``%2Fccremember_me`` (CoCalc's naming) and the plain name is not accepted."""
    c = Chain(tmp_path, base_url="/cc/")
    try:
        path = c.backend_url_path(app.port, "headers")
        assert path.startswith("/cc/")
        assert c.https("GET", path, cookie=f"remember_me={c.session}").status == 401
        r = c.https("GET", path, cookie=f"%2Fccremember_me={c.session}; keep=1")
        assert r.status == 200
        headers = {k.lower(): v for k, v in r.json()["headers"]}
        assert headers["cookie"] == "keep=1"
        key = c.admin.new_secret("api_keys", c.owner, None)
        assert c.https("GET", path, cookie=f"%2Fccapi_key={key}").status == 200
        assert c.https("GET", "/cc/healthz").body == b"ok\n"
    finally:
        c.close()


def test_https_hosts_verified_and_mutual_tls_between_hub_and_host(tmp_path, app):
    """A host with TLS and --client-ca; the hub verifies it (--host-ca) and shows
    its own certificate (--host-client-cert/--host-client-key).  A hub without a
    certificate, or a host the hub cannot verify, gives 502 with the reason logged."""
    from tests.support.certs import TestPKI
    from tests.support.chain import host_registry

    c = Chain(tmp_path / "a")
    try:
        hosts_pki = TestPKI(tmp_path / "hosts")
        server, client = hosts_pki.server(), hosts_pki.client("hub")
        registry = tmp_path / "tls-registry.sqlite3"
        host_registry(registry, [(PROJECT, "running", c.project.port)])
        host = c._start("host", ["--registry", str(registry), "--hub-secret-file", str(c.secret_file),
                                 "--https-key", server.key, "--https-cert", server.cert, "--client-ca", hosts_pki.ca])
        c.admin.add_host("tls", f"https://localhost:{host.port}")
        c.admin.place(PROJECT, "tls")
        path = c.backend_url_path(app.port, "headers")
        good = c.start_hub("--host-ca", hosts_pki.ca, "--host-client-cert", client.cert, "--host-client-key", client.key)
        r = c.https("GET", path, cookie=c.cookie(), hub=good)
        assert r.status == 200 and r.json()["path"] == "/headers"
        # a certificate from an intermediate CA, the host trusting only the root: the hub sends the chain
        chained = hosts_pki.intermediate_client("hub")
        via_intermediate = c.start_hub("--host-ca", hosts_pki.ca, "--host-client-cert", chained.cert,
                                       "--host-client-key", chained.key)
        r = c.https("GET", path, cookie=c.cookie(), hub=via_intermediate)
        assert r.status == 200, (r.status, r.body[:200], via_intermediate.log_text()[-1500:])
        no_cert = c.start_hub("--host-ca", hosts_pki.ca)
        r = c.https("GET", path, cookie=c.cookie(), hub=no_cert)
        assert r.status == 502 and b"TLS with the backend failed" in r.body
        unverified = c.start_hub()  # the system trust store does not know the hosts' CA
        r = c.https("GET", path, cookie=c.cookie(), hub=unverified)
        assert r.status == 502 and b"TLS with the backend failed" in r.body
        assert wait_until(lambda: "TLS to" in unverified.log_text(), 5)
    finally:
        c.close()
