"""SPEC §4 route table end to end: the real proxy process in front of recording backends.

Each row checks what the backend saw (request-target byte for byte) or, for
rejected rows, the status, the page and that no backend saw anything.
"""

from __future__ import annotations

import socket

import pytest

from tests.conftest import PROJECT_ID
from tests.support.backends import RecordingBackend
from tests.support.procs import ProxyProcess, free_port
from tests.support.waiting import wait_until
from tests.support.wire import exchange, http_get

OTHER_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
B = f"/{PROJECT_ID}/"


def forwarded_target(proxy: ProxyProcess, backend: RecordingBackend, path: str) -> bytes:
    """GET ``path`` through ``proxy``; assert it was proxied; the target the backend saw."""
    answer = exchange(proxy.port, http_get(path))
    assert (answer.status, answer.body) == (200, b"ok"), answer.raw[:400]
    requests = backend.wait_requests(1)
    assert len(requests) == 1
    return requests[0].target


def assert_rejected(proxy: ProxyProcess, path: str, status: int, backend: RecordingBackend | None = None) -> bytes:
    answer = exchange(proxy.port, http_get(path))
    assert answer.status == status, answer.raw[:400]
    assert answer.header(b"content-type") == b"text/html; charset=utf-8"
    if backend is not None:
        assert backend.requests == [] and backend.accepted == 0
    return answer.body


def not_allowed_text(host: str) -> bytes:
    # html.escape turns ' into &#x27;
    return f"<p>Host &#x27;{host}&#x27; is not allowed.</p>".encode()


@pytest.fixture(scope="module")
def plain_proxy():
    """No project id, explicit ``--target-host localhost``: B is ``/``."""
    p = ProxyProcess("project", ["--target-host", "localhost"])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def env_proxy():
    p = ProxyProcess("project", [], env={"COCALC_PROJECT_ID": OTHER_ID})
    yield p
    p.stop()


@pytest.fixture(scope="module")
def base_url_proxy():
    p = ProxyProcess("project", ["--project-id", PROJECT_ID, "--base-url", "/foo/"])
    yield p
    p.stop()


@pytest.fixture
def backend_127_0_0_2():
    b = RecordingBackend(host="127.0.0.2")
    yield b
    b.close()


@pytest.fixture
def backend_v6():
    b = RecordingBackend(host="::1", family=socket.AF_INET6)
    yield b
    b.close()


# ------------------------------------------------------------------ port, server, proxy


@pytest.mark.parametrize(
    "route, full",
    [("port", True), ("server", False), ("proxy", False), ("proxy/absolute", True)],
)
def test_port_routes_forward_full_or_stripped_path(project_proxy, backend, route, full):
    path = f"{B}{route}/{backend.port}/a/b%20c/?x=1&y=%2F"
    target = forwarded_target(project_proxy, backend, path)
    assert target == (path.encode() if full else b"/a/b%20c/?x=1&y=%2F")


@pytest.mark.parametrize("route", ["port", "server", "proxy", "proxy/absolute"])
def test_port_routes_root(project_proxy, backend, route):
    path = f"{B}{route}/{backend.port}/"
    target = forwarded_target(project_proxy, backend, path)
    assert target == (path.encode() if route in ("port", "proxy/absolute") else b"/")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "LocalHost"])
@pytest.mark.parametrize("absolute", [False, True])
def test_proxy_host_port_default_allowlist_allows(project_proxy, backend, host, absolute):
    path = f"{B}proxy/{'absolute/' if absolute else ''}{host}:{backend.port}/rest?q=1"
    target = forwarded_target(project_proxy, backend, path)
    assert target == (path.encode() if absolute else b"/rest?q=1")


@pytest.mark.parametrize("host", ["example.org", "127.0.0.2", "[::1]", "localhost.example.org", "10.0.0.1"])
@pytest.mark.parametrize("absolute", [False, True])
def test_proxy_host_not_on_default_allowlist_is_403(project_proxy, backend, host, absolute):
    path = f"{B}proxy/{'absolute/' if absolute else ''}{host}:{backend.port}/rest"
    body = assert_rejected(project_proxy, path, 403, backend)
    assert not_allowed_text(host) in body


@pytest.mark.parametrize(
    "seg",
    [
        "user@localhost:{port}",  # userinfo
        "user:pw@127.0.0.1:{port}",
        "@localhost:{port}",
        "localhost",  # no port
        "localhost:",  # empty port
        "localhost:http",  # non-numeric port
        "localhost:{port}x",
        "localhost:0",  # out of range
        "localhost:65536",
        "localhost:-1",
        ":{port}",  # no host
        "local%68ost:{port}",  # percent-encoding is not a host
    ],
)
@pytest.mark.parametrize("absolute", [False, True])
def test_proxy_bad_host_part_is_404(project_proxy, backend, seg, absolute):
    path = f"{B}proxy/{'absolute/' if absolute else ''}{seg.format(port=backend.port)}/rest"
    body = assert_rejected(project_proxy, path, 404, backend)
    assert b"<p>No route matches this URL.</p>" in body


@pytest.mark.parametrize("route", ["port", "server", "proxy", "proxy/absolute"])
@pytest.mark.parametrize("port", ["0", "65536", "abc", "80a", "-80", "123456", ""])
def test_bad_port_is_404(project_proxy, backend, route, port):
    assert_rejected(project_proxy, f"{B}{route}/{port}/x", 404, backend)


# ------------------------------------------------------------------ trailing-slash redirects


@pytest.mark.parametrize(
    "path",
    [
        f"{B}port/8000",
        f"{B}server/8000",
        f"{B}proxy/8000",
        f"{B}proxy/absolute/8000",
        f"{B}proxy/localhost:8000",
        f"{B}proxy/absolute/127.0.0.1:8000",
        f"/{PROJECT_ID}",
    ],
)
@pytest.mark.parametrize("query", ["", "?a=b&c=%2F", "?"])
def test_missing_trailing_slash_redirects_with_query(project_proxy, path, query):
    answer = exchange(project_proxy.port, http_get(path + query))
    assert answer.status == 301
    assert answer.status_line == b"HTTP/1.1 301 Moved Permanently"
    assert answer.header_all(b"location") == [f"{path}/{query}".encode()]


def test_disallowed_host_without_slash_is_403_not_redirect(project_proxy):
    answer = exchange(project_proxy.port, http_get(f"{B}proxy/example.org:8000"))
    assert answer.status == 403
    assert answer.header(b"location") is None


# ------------------------------------------------------------------ outside B


@pytest.mark.parametrize(
    "path",
    [
        "/port/{port}/x",  # no project id
        "/server/{port}/x",
        f"/{OTHER_ID}/server/{{port}}/x",  # another project
        f"/{PROJECT_ID}x/server/{{port}}/x",
        f"/{PROJECT_ID.upper()}/server/{{port}}/x",
        f"{B}nothing/{{port}}/x",
        f"{B}Server/{{port}}/x",
        "/",
        "/healthz",
    ],
)
def test_outside_base_is_404(project_proxy, backend, path):
    assert_rejected(project_proxy, path.format(port=backend.port), 404, backend)


# ------------------------------------------------------------------ other bases


def test_without_project_id_base_is_root(plain_proxy, backend):
    assert forwarded_target(plain_proxy, backend, f"/port/{backend.port}/a?b") == f"/port/{backend.port}/a?b".encode()


def test_without_project_id_server_route(plain_proxy, backend):
    assert forwarded_target(plain_proxy, backend, f"/server/{backend.port}/a?b") == b"/a?b"


def test_without_project_id_a_project_path_is_404(plain_proxy, backend):
    assert_rejected(plain_proxy, f"/{PROJECT_ID}/server/{backend.port}/a", 404, backend)


def test_without_project_id_redirect(plain_proxy):
    answer = exchange(plain_proxy.port, http_get("/server/8000?x"))
    assert (answer.status, answer.header(b"location")) == (301, b"/server/8000/?x")


def test_project_id_from_environment(env_proxy, backend):
    assert forwarded_target(env_proxy, backend, f"/{OTHER_ID}/server/{backend.port}/a?b") == b"/a?b"


def test_project_id_from_environment_other_paths_404(env_proxy, backend):
    assert_rejected(env_proxy, f"/server/{backend.port}/a", 404, backend)
    assert_rejected(env_proxy, f"/{PROJECT_ID}/server/{backend.port}/a", 404, backend)


def test_base_url_port_route_keeps_full_path(base_url_proxy, backend):
    path = f"/foo/{PROJECT_ID}/port/{backend.port}/a?b"
    assert forwarded_target(base_url_proxy, backend, path) == path.encode()


def test_base_url_server_route_strips_and_sets_context(base_url_proxy, backend):
    path = f"/foo/{PROJECT_ID}/server/{backend.port}/a?b"
    assert forwarded_target(base_url_proxy, backend, path) == b"/a?b"
    context = f"/foo/{PROJECT_ID}/server/{backend.port}".encode()
    seen = backend.requests[0]
    for name in (b"x-forwarded-context", b"x-proxycontextpath", b"x-forwarded-prefix"):
        assert seen.header_all(name) == [context]


@pytest.mark.parametrize(
    "path",
    [f"/{PROJECT_ID}/server/{{port}}/a", f"/foo/server/{{port}}/a", "/foo/server/{port}/a",
     f"/bar/{PROJECT_ID}/server/{{port}}/a", f"/foo/{OTHER_ID}/server/{{port}}/a", "/foo/", "/"],
)
def test_base_url_outside_is_404(base_url_proxy, backend, path):
    assert_rejected(base_url_proxy, path.format(port=backend.port), 404, backend)


@pytest.mark.parametrize(
    "path, location",
    [
        (f"/foo/{PROJECT_ID}/server/8000?q=1", f"/foo/{PROJECT_ID}/server/8000/?q=1"),
        (f"/foo/{PROJECT_ID}", f"/foo/{PROJECT_ID}/"),
    ],
)
def test_base_url_redirects(base_url_proxy, path, location):
    answer = exchange(base_url_proxy.port, http_get(path))
    assert (answer.status, answer.header(b"location")) == (301, location.encode())


# ------------------------------------------------------------------ --target-host localhost


def test_localhost_reaches_backend_listening_only_on_ipv6(plain_proxy, backend_v6):
    with socket.socket() as probe:  # precondition: nothing on 127.0.0.1 at that port
        assert probe.connect_ex(("127.0.0.1", backend_v6.port)) != 0
    target = forwarded_target(plain_proxy, backend_v6, f"/server/{backend_v6.port}/six")
    assert target == b"/six"


def test_localhost_reaches_backend_listening_only_on_ipv4(plain_proxy, backend):
    with socket.socket(socket.AF_INET6) as probe:  # precondition: nothing on ::1 at that port
        assert probe.connect_ex(("::1", backend.port)) != 0
    assert forwarded_target(plain_proxy, backend, f"/port/{backend.port}/four") == f"/port/{backend.port}/four".encode()


def test_localhost_with_nothing_listening_is_502(plain_proxy):
    port = free_port()
    answer = exchange(plain_proxy.port, http_get(f"/server/{port}/"))
    assert answer.status == 502
    assert b"connection refused" in answer.body


# ------------------------------------------------------------------ --config allowlists


def _proxy_with_config(tmp_path_factory, name: str, text: str) -> ProxyProcess:
    path = tmp_path_factory.mktemp("cfg") / name
    path.write_text(text)
    return ProxyProcess("project", ["--project-id", PROJECT_ID, "--config", str(path)])


CONFIGS = {
    "python-list": (
        "jupyter_server_config.py",
        "c.ServerProxy.host_allowlist = ['localhost', '127.0.0.*']\n",
    ),
    "python-callable": (
        "jupyter_server_config.py",
        "def allow(handler, host):\n"
        "    if host == '127.0.0.9':\n"
        "        raise RuntimeError('secret-internal-detail')\n"
        "    return host in ('127.0.0.2', '[::1]')\n"
        "c.ServerProxy.host_allowlist = allow\n",
    ),
    "json": ("proxy.json", '{"host_allowlist": ["127.0.0.2"]}'),
    "toml": ("proxy.toml", 'host_allowlist = ["127.0.0.*", "::1"]\n'),
}

# host → allowed? for each config; ports are filled in with a live backend's port.
EXPECTED = {
    "python-list": {"127.0.0.2": True, "localhost": True, "127.0.0.1": True, "127.0.1.2": False,
                    "example.org": False, "[::1]": False},
    "python-callable": {"127.0.0.2": True, "[::1]": True, "localhost": False, "127.0.0.1": False},
    "json": {"127.0.0.2": True, "127.0.0.1": False, "localhost": False, "[::1]": False},
    "toml": {"127.0.0.2": True, "127.0.0.1": True, "[::1]": True, "localhost": False, "127.0.1.2": False},
}


@pytest.fixture(scope="module")
def config_proxies(tmp_path_factory):
    proxies = {}
    try:
        for key, (name, text) in CONFIGS.items():
            proxies[key] = _proxy_with_config(tmp_path_factory, name, text)
        yield proxies
    finally:
        for p in proxies.values():
            p.stop()


def _backend_for(host: str) -> RecordingBackend:
    if host == "[::1]":
        return RecordingBackend(host="::1", family=socket.AF_INET6)
    if host.startswith("127."):
        return RecordingBackend(host=host)
    return RecordingBackend()


@pytest.mark.parametrize(
    "config, host, allowed",
    [(c, h, a) for c, table in EXPECTED.items() for h, a in table.items()],
)
@pytest.mark.parametrize("absolute", [False, True])
def test_config_allowlist(config_proxies, config, host, allowed, absolute):
    proxy = config_proxies[config]
    b = _backend_for(host) if host != "127.0.1.2" else RecordingBackend()
    try:
        path = f"{B}proxy/{'absolute/' if absolute else ''}{host}:{b.port}/rest?x"
        if allowed:
            assert forwarded_target(proxy, b, path) == (path.encode() if absolute else b"/rest?x")
        else:
            body = assert_rejected(proxy, path, 403, b)
            assert not_allowed_text(host) in body
    finally:
        b.close()


@pytest.mark.parametrize("config", list(CONFIGS))
def test_config_bad_host_part_still_404(config_proxies, config):
    answer = exchange(config_proxies[config].port, http_get(f"{B}proxy/user@127.0.0.2:8000/"))
    assert answer.status == 404


def test_config_callable_that_raises_denies(config_proxies):
    proxy = config_proxies["python-callable"]
    answer = exchange(proxy.port, http_get(f"{B}proxy/127.0.0.9:8000/x"))
    assert answer.status == 403, answer.raw[:400]
    assert not_allowed_text("127.0.0.9") in answer.body
    assert b"secret-internal-detail" not in answer.raw
    assert b"Traceback" not in answer.raw
    assert exchange(proxy.port, http_get(f"{B}healthz")).status == 200
    # the operator learns why from the log, the user never does
    assert wait_until(lambda: "host_allowlist raised RuntimeError('secret-internal-detail')" in proxy.log_text(),
                      5, 0.05), proxy.log_text()[-2000:]
