"""Route decisions of the ``host`` and ``hub`` roles (SPEC §5, §6): one row per case."""

from __future__ import annotations

import pytest

from cocalcproxy.auth.credentials import CookieNames, Credential
from cocalcproxy.auth.policy import Decision, UNAUTHENTICATED
from cocalcproxy.http1.head import parse_request_head
from cocalcproxy.routing.host import HostRouting, Placement, route_host
from cocalcproxy.routing.hub import (DATABASE_DOWN, NOT_PLACED, HostTarget, HubRequest, HubRouting, parse_host_url,
                                     parse_hub_request, refusal, route_hub)
from cocalcproxy.routing.types import Forward, Local, Reject

PID = "6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f"
REGISTRY = {
    PID: Placement("running", 8081),
    "aaaaaaaa-1b4a-4c8e-9d7f-0a1b2c3d4e5f": Placement("stopped", 8082),
    "bbbbbbbb-1b4a-4c8e-9d7f-0a1b2c3d4e5f": Placement("running", None),
}


@pytest.mark.parametrize("target, expected", [
    (f"/{PID}/port/8000/x?q=1", Forward("127.0.0.1", 8081, f"/{PID}/port/8000/x?q=1".encode(), None, "host")),
    (f"/{PID}", Forward("127.0.0.1", 8081, f"/{PID}".encode(), None, "host")),
    (f"/{PID}/a%2fb", Forward("127.0.0.1", 8081, f"/{PID}/a%2fb".encode(), None, "host")),
    ("/aaaaaaaa-1b4a-4c8e-9d7f-0a1b2c3d4e5f/", 503),
    ("/bbbbbbbb-1b4a-4c8e-9d7f-0a1b2c3d4e5f/", 503),
    ("/cccccccc-1b4a-4c8e-9d7f-0a1b2c3d4e5f/", 404),
    (f"/{PID.upper()}/", 404),  # registry ids are lowercase UUIDs
    ("/not-a-uuid/", 404),
    ("/", 404),
    ("/healthz", Local("healthz")),
    (f"/{PID}/../other/", 400),
    (f"/{PID}%2fport/", 400),
    ("http://evil/x", 400),
])
def test_route_host(target, expected):
    route = route_host(HostRouting(b"/"), target.encode(), REGISTRY)
    if isinstance(expected, int):
        assert type(route) is Reject and route.status == expected
        if expected == 503:
            assert b"Retry-After: 5" in route.headers
    else:
        assert route == expected


def test_route_host_under_a_base_url():
    routing = HostRouting(b"/cc/")
    assert route_host(routing, f"/cc/{PID}/x".encode(), REGISTRY).port == 8081
    assert route_host(routing, f"/{PID}/x".encode(), REGISTRY).status == 404
    assert route_host(routing, b"/cc/healthz", REGISTRY) == Local("healthz")


@pytest.mark.parametrize("url, target", [
    ("http://10.0.0.5:9001", HostTarget("10.0.0.5", 9001, False)),
    ("https://host.example:9443/", HostTarget("host.example", 9443, True)),
    ("https://host.example", HostTarget("host.example", 443, True)),
    ("http://[::1]:9001", HostTarget("::1", 9001, False)),
    ("HTTP://h:1", HostTarget("h", 1, False)),
    ("ftp://h:1", None), ("http://h:1/path", None), ("http://u@h:1", None), ("http://h:0", None),
    ("http://h:x", None), ("http://", None), ("h:1", None), ("", None), (None, None), ("http://[::1]x:1", None),
])
def test_parse_host_url(url, target):
    assert parse_host_url(url) == target


NAMES = CookieNames.for_base("/")
ROUTING = HubRouting(b"/", NAMES)


def head(target: str, *headers: bytes):
    return parse_request_head(f"GET {target} HTTP/1.1\r\nHost: h\r\n".encode() + b"".join(x + b"\r\n" for x in headers))


def test_parse_hub_request():
    r = parse_hub_request(ROUTING, head(f"/{PID}/port/1/", b"Cookie: remember_me=s"))
    assert type(r) is HubRequest and r.project_id == PID and r.credential.kind == "session"
    assert parse_hub_request(ROUTING, head(f"/{PID}/")).credential is None
    assert parse_hub_request(ROUTING, head("/healthz")) == Local("healthz")
    assert parse_hub_request(ROUTING, head("/static/app.js")).status == 404
    assert parse_hub_request(ROUTING, head(f"/{PID}/../x")).status == 400
    fb = HubRouting(b"/", NAMES, HostTarget("127.0.0.1", 5000, False))
    route = parse_hub_request(fb, head("/static/app.js", b"Cookie: remember_me=s; x=1"))
    assert (route.host, route.port, route.target, route.strip_cookies) == ("127.0.0.1", 5000, b"/static/app.js",
                                                                           NAMES.both)
    assert b"x-cocalc-hub-secret" in route.strip  # a client's copy never reaches the fallback app either


ALLOW = Decision(True, account_id="a")


def test_route_hub_forwards_with_the_path_unchanged_and_credentials_stripped():
    req = head(f"/{PID}/server/8000/?a=%2F", b"Cookie: remember_me=s")
    hub = parse_hub_request(ROUTING, req)
    route = route_hub(ROUTING, req, hub, ALLOW, "http://10.1.2.3:9001", b"sekrit")
    assert route == Forward("10.1.2.3", 9001, f"/{PID}/server/8000/?a=%2F".encode(), None, "hub",
                            set_headers=((b"X-CoCalc-Hub-Secret", b"sekrit"),),
                            strip=frozenset((b"x-cocalc-hub-secret",)), strip_cookies=NAMES.both)
    bearer = head(f"/{PID}/", b"Authorization: Bearer k")
    route = route_hub(ROUTING, bearer, parse_hub_request(ROUTING, bearer), ALLOW, "https://h.example:9443", None,
                      tls_for=lambda name: ("creator", name))
    assert b"authorization" in route.strip and route.set_headers == () and route.tls == ("creator", "h.example")


def test_route_hub_refusals():
    req = head(f"/{PID}/")
    hub = HubRequest(PID, Credential("session", "x"))
    assert route_hub(ROUTING, req, hub, ALLOW, None, None) is NOT_PLACED
    assert b"Retry-After: 5" in NOT_PLACED.headers and DATABASE_DOWN.status == 503
    assert route_hub(ROUTING, req, hub, ALLOW, "gopher://x", None).status == 502
    denied = route_hub(ROUTING, req, hub, Decision(False, 403, "You are not a collaborator on this project."), "x", None)
    assert (denied.status, denied.headers) == (403, ())
    unauth = refusal(UNAUTHENTICATED)
    assert unauth.status == 401 and unauth.headers == (b'WWW-Authenticate: Bearer realm="cocalcproxy"',)
