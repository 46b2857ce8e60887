"""SPEC §3 header policy end to end: hop-by-hop, Host, X-Forwarded-*, context-path
headers, repeated headers and 3xx Location rewriting, seen from both ends.

Two proxies: the shared one trusts its default networks (the test client is
127.0.0.1, so it is trusted); the other trusts only 10.9.9.9/32, which makes
127.0.0.1 an untrusted peer.
"""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT_ID
from tests.support.backends import Recorded, RecordingBackend, simple_response
from tests.support.procs import ProxyProcess
from tests.support.wire import Answer, connect

B = f"/{PROJECT_ID}/"
CONTEXT_NAMES = (b"x-forwarded-context", b"x-proxycontextpath", b"x-forwarded-prefix")
XF_NAMES = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port")


def respond_as_asked(req: Recorded) -> bytes:
    """200 ``ok``, or the status/Location the request asks for in X-Want-* headers."""
    status = int(req.header(b"x-want-status") or b"200")
    location = req.header(b"x-want-location")
    headers = [(b"Content-Type", b"text/plain")]
    if location is not None:
        headers.append((b"Location", location))
    return simple_response(status, b"ok", headers)


@pytest.fixture
def backend():
    b = RecordingBackend(respond_as_asked)
    yield b
    b.close()


@pytest.fixture(scope="module")
def untrusting_proxy():
    p = ProxyProcess("project", ["--project-id", PROJECT_ID, "--trusted-proxy", "10.9.9.9/32"])
    yield p
    p.stop()


def through(proxy: ProxyProcess, backend: RecordingBackend, path: str, headers: list[tuple[bytes, bytes]] = (),
            host: bytes = b"app.example.test") -> tuple[Answer, Recorded]:
    """One keep-alive GET through ``proxy``: (the client's answer, what the backend saw)."""
    lines = [b"GET " + path.encode() + b" HTTP/1.1", b"Host: " + host] + [k + b": " + v for k, v in headers]
    with connect(proxy.port) as c:
        c.send(b"\r\n".join(lines) + b"\r\n\r\n")
        answer = c.read_answer()
    seen = backend.wait_requests(1)
    assert len(seen) == 1, "the backend did not get the request"
    return answer, seen[0]


def names(recorded: Recorded) -> list[bytes]:
    return [k for k, _ in recorded.headers]


# ------------------------------------------------------------------ hop-by-hop and Host


def test_request_hop_by_hop_headers_removed(project_proxy, backend):
    answer, seen = through(project_proxy, backend, f"{B}server/{backend.port}/", [
        (b"Connection", b"keep-alive, X-Drop-Me, x-drop-too"),
        (b"Connection", b"X-Drop-Three"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"TE", b"trailers"),
        (b"Trailer", b"X-T"),
        (b"Upgrade", b"h2c"),
        (b"X-Drop-Me", b"1"),
        (b"x-DROP-too", b"2"),
        (b"X-Drop-Three", b"3"),
        (b"X-Keep", b"yes"),
    ], host=b"Example.TEST:1234")
    assert answer.status == 200
    kept = [k for k in names(seen) if not k.startswith(b"x-forwarded-") and k != b"x-proxycontextpath"]
    assert kept == [b"host", b"x-keep"]
    assert b"\r\nHost: Example.TEST:1234\r\n" in seen.raw_head
    assert seen.header(b"x-keep") == b"yes"


def test_response_hop_by_hop_headers_removed(project_proxy):
    reply = (b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
             b"Proxy-Connection: keep-alive\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-End: ok\r\n"
             b"Content-Length: 2\r\n\r\nok")
    b = RecordingBackend(lambda req: reply)
    try:
        answer, _ = through(project_proxy, b, f"{B}server/{b.port}/")
    finally:
        b.close()
    assert (answer.status, answer.body) == (200, b"ok")
    assert [k for k, _ in answer.headers] == [b"x-end", b"content-length"]


@pytest.mark.parametrize("route", ["port/{port}", "server/{port}", "proxy/{port}", "proxy/absolute/{port}",
                                   "proxy/localhost:{port}", "proxy/absolute/127.0.0.1:{port}"])
def test_host_header_preserved_on_every_route(project_proxy, backend, route):
    _, seen = through(project_proxy, backend, f"{B}{route.format(port=backend.port)}/", host=b"Some.Host:99")
    assert seen.header_all(b"host") == [b"Some.Host:99"]
    assert b"\r\nHost: Some.Host:99\r\n" in seen.raw_head


# ------------------------------------------------------------------ X-Forwarded-* from a trusted peer


def test_trusted_peer_without_forwarded_headers_gets_them_set(project_proxy, backend):
    _, seen = through(project_proxy, backend, f"{B}port/{backend.port}/", host=b"app.example.test:8443")
    assert seen.header_all(b"x-forwarded-for") == [b"127.0.0.1"]
    assert seen.header_all(b"x-forwarded-proto") == [b"http"]
    assert seen.header_all(b"x-forwarded-host") == [b"app.example.test:8443"]
    assert seen.header_all(b"x-forwarded-port") == [str(project_proxy.port).encode()]


def test_trusted_peer_forwarded_headers_kept_and_for_appended(project_proxy, backend):
    _, seen = through(project_proxy, backend, f"{B}port/{backend.port}/", [
        (b"X-Forwarded-For", b"203.0.113.7, 10.0.0.1"),
        (b"X-Forwarded-Proto", b"https"),
        (b"X-Forwarded-Host", b"cocalc.example.com"),
        (b"X-Forwarded-Port", b"443"),
        (b"X-Forwarded-Server", b"hub-1"),
    ])
    assert seen.header_all(b"x-forwarded-for") == [b"203.0.113.7, 10.0.0.1, 127.0.0.1"]
    assert seen.header_all(b"x-forwarded-proto") == [b"https"]
    assert seen.header_all(b"x-forwarded-host") == [b"cocalc.example.com"]
    assert seen.header_all(b"x-forwarded-port") == [b"443"]
    assert seen.header_all(b"x-forwarded-server") == [b"hub-1"]


def test_trusted_peer_repeated_forwarded_for_lines(project_proxy, backend):
    _, seen = through(project_proxy, backend, f"{B}port/{backend.port}/", [
        (b"X-Forwarded-For", b"198.51.100.1"),
        (b"X-Forwarded-For", b"198.51.100.2"),
    ])
    # as one list (RFC 9110 §5.3), the peer is appended once, at the end
    assert b", ".join(seen.header_all(b"x-forwarded-for")) == b"198.51.100.1, 198.51.100.2, 127.0.0.1"


# ------------------------------------------------------------------ X-Forwarded-* from an untrusted peer


@pytest.mark.parametrize("route", ["port", "server"])
def test_untrusted_peer_forwarded_headers_replaced(untrusting_proxy, backend, route):
    _, seen = through(untrusting_proxy, backend, f"{B}{route}/{backend.port}/", [
        (b"X-Forwarded-For", b"203.0.113.7"),
        (b"x-forwarded-for", b"203.0.113.8"),
        (b"X-Forwarded-Proto", b"https"),
        (b"X-Forwarded-Host", b"evil.example"),
        (b"X-Forwarded-Port", b"443"),
        (b"X-Forwarded-Server", b"evil"),
        (b"X-Forwarded-Anything", b"evil"),
        (b"X-Keep", b"1"),
    ], host=b"app.example.test:8443")
    assert seen.header_all(b"x-forwarded-for") == [b"127.0.0.1"]
    assert seen.header_all(b"x-forwarded-proto") == [b"http"]
    assert seen.header_all(b"x-forwarded-host") == [b"app.example.test:8443"]
    assert seen.header_all(b"x-forwarded-port") == [str(untrusting_proxy.port).encode()]
    assert seen.header_all(b"x-forwarded-server") == []
    assert seen.header_all(b"x-forwarded-anything") == []
    assert seen.header_all(b"x-keep") == [b"1"]
    assert b"evil" not in seen.raw_head and b"203.0.113" not in seen.raw_head


CLIENT_CONTEXT = [(b"X-Forwarded-Context", b"/evil"), (b"X-ProxyContextPath", b"/evil"),
                  (b"X-Forwarded-Prefix", b"/evil")]


@pytest.mark.parametrize("route", ["port/{port}", "proxy/absolute/{port}", "proxy/absolute/localhost:{port}"])
def test_untrusted_peer_context_headers_dropped_on_full_path_routes(untrusting_proxy, backend, route):
    _, seen = through(untrusting_proxy, backend, f"{B}{route.format(port=backend.port)}/", CLIENT_CONTEXT)
    for name in CONTEXT_NAMES:
        assert seen.header_all(name) == []


@pytest.mark.parametrize("route", ["server", "proxy"])
def test_untrusted_peer_context_headers_replaced_on_stripping_routes(untrusting_proxy, backend, route):
    _, seen = through(untrusting_proxy, backend, f"{B}{route}/{backend.port}/x", CLIENT_CONTEXT)
    for name in CONTEXT_NAMES:
        assert seen.header_all(name) == [f"{B}{route}/{backend.port}".encode()]


# ------------------------------------------------------------------ context-path headers


@pytest.mark.parametrize(
    "route, context",
    [
        ("server/{port}", "server/{port}"),
        ("proxy/{port}", "proxy/{port}"),
        ("proxy/localhost:{port}", "proxy/localhost:{port}"),
        ("port/{port}", None),
        ("proxy/absolute/{port}", None),
        ("proxy/absolute/127.0.0.1:{port}", None),
    ],
)
def test_context_path_headers(project_proxy, backend, route, context):
    _, seen = through(project_proxy, backend, f"{B}{route.format(port=backend.port)}/a/b?c")
    expected = [f"{B}{context.format(port=backend.port)}".encode()] if context else []
    for name in CONTEXT_NAMES:
        assert seen.header_all(name) == expected


def test_trusted_peer_context_headers_replaced_on_stripping_route(project_proxy, backend):
    _, seen = through(project_proxy, backend, f"{B}server/{backend.port}/", CLIENT_CONTEXT)
    for name in CONTEXT_NAMES:
        assert seen.header_all(name) == [f"{B}server/{backend.port}".encode()]


def test_trusted_peer_context_headers_kept_on_full_path_route(project_proxy, backend):
    """A trusted front proxy's own context headers pass a route that sets none."""
    _, seen = through(project_proxy, backend, f"{B}port/{backend.port}/", CLIENT_CONTEXT)
    for name in CONTEXT_NAMES:
        assert seen.header_all(name) == [b"/evil"]


# ------------------------------------------------------------------ repeated headers


def test_repeated_request_headers_kept_separate_in_order(project_proxy, backend):
    _, seen = through(project_proxy, backend, f"{B}server/{backend.port}/", [
        (b"Cookie", b"a=1"),
        (b"X-Custom", b"one"),
        (b"Cookie", b"b=2; c=3"),
        (b"X-Custom", b"two"),
        (b"X-Custom", b"three, four"),
    ])
    assert seen.header_all(b"cookie") == [b"a=1", b"b=2; c=3"]
    assert seen.header_all(b"x-custom") == [b"one", b"two", b"three, four"]
    assert b"Cookie: a=1\r\nX-Custom: one\r\nCookie: b=2; c=3\r\nX-Custom: two\r\nX-Custom: three, four\r\n" in seen.raw_head


def test_repeated_response_headers_kept_separate_in_order(project_proxy):
    cookies = [b"a=1; Path=/", b"b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT; HttpOnly", b"c=3"]
    headers = [(b"Set-Cookie", cookies[0]), (b"X-Multi", b"x"), (b"Set-Cookie", cookies[1]),
               (b"X-Multi", b"y"), (b"Set-Cookie", cookies[2])]
    b = RecordingBackend(lambda req: simple_response(200, b"ok", headers))
    try:
        answer, _ = through(project_proxy, b, f"{B}server/{b.port}/")
    finally:
        b.close()
    assert answer.header_all(b"set-cookie") == cookies
    assert answer.header_all(b"x-multi") == [b"x", b"y"]
    assert [k for k, _ in answer.headers][:5] == [b"set-cookie", b"x-multi", b"set-cookie", b"x-multi", b"set-cookie"]


# ------------------------------------------------------------------ Location rewriting


REWRITE_CASES = [
    ("/x", "{ctx}/x"),
    ("/", "{ctx}/"),
    ("/x/y?z=1#f", "{ctx}/x/y?z=1#f"),
    ("{ctx}/x", "{ctx}/x"),  # already prefixed
    ("{ctx}", "{ctx}"),
    ("{ctx}?q", "{ctx}?q"),
    ("{ctx}#f", "{ctx}#f"),
    ("{ctx}0/x", "{ctx}{ctx}0/x"),  # a longer segment is not the prefix
    ("x/y", "x/y"),  # relative
    ("../up", "../up"),
    ("?only=query", "?only=query"),
    ("//other.example/x", "//other.example/x"),  # scheme-relative
    ("http://h/x", "http://h/x"),
    ("https://h.example:8443/x?y", "https://h.example:8443/x?y"),
]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("route", ["server/{port}", "proxy/{port}", "proxy/localhost:{port}"])
@pytest.mark.parametrize("location, expected", REWRITE_CASES)
def test_location_rewritten_on_stripping_routes(project_proxy, backend, status, route, location, expected):
    ctx = f"{B}{route.format(port=backend.port)}"
    answer, _ = through(project_proxy, backend, f"{ctx}/a", [
        (b"X-Want-Status", str(status).encode()),
        (b"X-Want-Location", location.format(ctx=ctx).encode()),
    ])
    assert answer.status == status
    assert answer.header_all(b"location") == [expected.format(ctx=ctx).encode()]


@pytest.mark.parametrize("route", ["port/{port}", "proxy/absolute/{port}", "proxy/absolute/localhost:{port}"])
@pytest.mark.parametrize("location", ["/x", "/", "x/y", "//h/x", "http://h/x"])
def test_location_never_rewritten_on_full_path_routes(project_proxy, backend, route, location):
    answer, _ = through(project_proxy, backend, f"{B}{route.format(port=backend.port)}/a", [
        (b"X-Want-Status", b"302"), (b"X-Want-Location", location.encode()),
    ])
    assert (answer.status, answer.header_all(b"location")) == (302, [location.encode()])


@pytest.mark.parametrize("status", [200, 201])
def test_location_not_rewritten_outside_3xx(project_proxy, backend, status):
    answer, _ = through(project_proxy, backend, f"{B}server/{backend.port}/a", [
        (b"X-Want-Status", str(status).encode()), (b"X-Want-Location", b"/x"),
    ])
    assert (answer.status, answer.header_all(b"location")) == (status, [b"/x"])
