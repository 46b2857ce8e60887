"""The ``project`` role's URL table (SPEC §4), one row per URL, under every kind of
base: no project id, a project id, a base URL with a project id, a base URL alone."""

from __future__ import annotations

import pytest

from cocalcproxy.roles.common import CommonConfig
from cocalcproxy.roles.project.options import Options as ProjectOptions
from cocalcproxy.roles.project.options import ProjectConfig
from cocalcproxy.routing.allowlist import HostAllowlist
from cocalcproxy.routing.project import ProjectRouting, route_project
from cocalcproxy.routing.types import Forward, Local, Named, Redirect, Reject

PID = "6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f"
BASES = {
    "no-project-id": "/",
    "project-id": f"/{PID}/",
    "base-url-and-project-id": f"/foo/{PID}/",
    "base-url-only": "/foo/bar/",
}


def project_config(base_url: str, project_id: str | None) -> ProjectConfig:
    return ProjectConfig(common=CommonConfig(base_url=base_url), project_id=project_id)


def test_project_base_definition() -> None:
    """B as SPEC §4 defines it (``ProjectConfig.base``, what the role routes under):
    ``<base-url><project_id>/`` or ``<base-url>``."""
    assert project_config("/", PID).base == f"/{PID}/"
    assert project_config("/foo/", PID).base == f"/foo/{PID}/"
    assert project_config("/foo/", None).base == "/foo/"
    assert project_config("/", None).base == "/"


@pytest.mark.parametrize("base_url, project_id, base", [
    ("/foo", PID, f"/foo/{PID}/"),  # --base-url is normalised before B is built
    ("//foo//bar", None, "/foo/bar/"),
    ("", PID, f"/{PID}/"),
])
def test_project_base_from_the_command_line(base_url: str, project_id: str | None, base: str, monkeypatch) -> None:
    monkeypatch.delenv("COCALC_PROJECT_ID", raising=False)
    options = ProjectOptions()
    args = ["--no-entry-points", "--base-url", base_url] + (["--project-id", project_id] if project_id else [])
    options.parseOptions(args)
    assert options.config().base == base


@pytest.fixture(params=list(BASES.values()), ids=list(BASES))
def base(request) -> bytes:
    return request.param.encode()


def routing(base: bytes, **kw) -> ProjectRouting:
    kw.setdefault("servers", ("lab", "code-server"))
    return ProjectRouting(base=base, **kw)


def route(base: bytes, rest: bytes, **kw):
    return route_project(routing(base, **kw), base + rest)


# -------------------------------------------------------------- the SPEC table


def test_port_route_keeps_the_full_path(base: bytes) -> None:
    target = base + b"port/8000/rest/of/it?q=1&r=%2F"
    assert route_project(routing(base), target) == Forward("localhost", 8000, target, None, "port")


def test_server_route_strips_the_prefix(base: bytes) -> None:
    assert route(base, b"server/8000/rest/of/it?q=1") == Forward(
        "localhost", 8000, b"/rest/of/it?q=1", base + b"server/8000", "server"
    )


def test_proxy_route_strips_the_prefix(base: bytes) -> None:
    assert route(base, b"proxy/8000/rest?q") == Forward("localhost", 8000, b"/rest?q", base + b"proxy/8000", "proxy")


def test_proxy_absolute_route_keeps_the_full_path(base: bytes) -> None:
    target = base + b"proxy/absolute/8000/rest?q"
    assert route_project(routing(base), target) == Forward("localhost", 8000, target, None, "proxy")


def test_proxy_host_port_route_on_the_allowlist(base: bytes) -> None:
    assert route(base, b"proxy/127.0.0.1:9000/rest?q") == Forward(
        "127.0.0.1", 9000, b"/rest?q", base + b"proxy/127.0.0.1:9000", "proxy"
    )


def test_proxy_absolute_host_port_route(base: bytes) -> None:
    target = base + b"proxy/absolute/localhost:9000/rest?q"
    assert route_project(routing(base), target) == Forward("localhost", 9000, target, None, "proxy")


def test_named_server_route(base: bytes) -> None:
    target = base + b"lab/tree/x?token=1"
    assert route_project(routing(base), target) == Named("lab", b"/tree/x?token=1", target, base + b"lab")


@pytest.mark.parametrize(
    "rest,location",
    [
        (b"port/8000", b"port/8000/"),
        (b"port/8000?x=1&y=%2F", b"port/8000/?x=1&y=%2F"),
        (b"server/8000", b"server/8000/"),
        (b"server/8000?", b"server/8000/?"),
        (b"proxy/8000?a=b", b"proxy/8000/?a=b"),
        (b"proxy/absolute/8000?a", b"proxy/absolute/8000/?a"),
        (b"proxy/localhost:8000?a", b"proxy/localhost:8000/?a"),
        (b"proxy/absolute/127.0.0.1:8000", b"proxy/absolute/127.0.0.1:8000/"),
        (b"lab", b"lab/"),
        (b"lab?reset", b"lab/?reset"),
    ],
)
def test_trailing_slash_redirects_keep_the_query(base: bytes, rest: bytes, location: bytes) -> None:
    assert route(base, rest) == Redirect(base + location)


@pytest.mark.parametrize("base_url", [b for b in BASES.values() if b != "/"])
def test_base_without_trailing_slash_redirects(base_url: str) -> None:
    base = base_url.encode()  # (the root has no slash-less form)
    assert route_project(routing(base), base[:-1] + b"?x=1") == Redirect(base + b"?x=1")


def test_base_itself_is_the_index(base: bytes) -> None:
    assert route(base, b"") == Local("index")
    assert route(base, b"?x=1") == Local("index")


def test_healthz(base: bytes) -> None:
    assert route(base, b"healthz") == Local("healthz")
    assert route(base, b"healthz?probe=1") == Local("healthz")


@pytest.mark.parametrize("port", [b"1", b"80", b"65535"])
def test_port_range_edges(base: bytes, port: bytes) -> None:
    assert route(base, b"server/" + port + b"/").port == int(port)


NOT_FOUND = [
    b"port/0/",
    b"port/65536/",
    b"port/abc/",
    b"port//",
    b"port/-1/",
    b"port/8000:1/",
    b"server/0/",
    b"server/x/",
    b"proxy//",
    b"proxy/absolute/0/",
    b"proxy/absolute/",
    b"proxy/absolute",  # "absolute" is not a port and not HOST:PORT
    b"unknown-server/",
    b"unknown-server",
    b"Lab/",  # names are case-sensitive
    b"caf\xc3\xa9/",
    b"port",  # "port" alone is not a named server
    # HOST:PORT forms that are never proxied (SPEC §4)
    b"proxy/user@localhost:8000/",
    b"proxy/user:pw@localhost:8000/",
    b"proxy/localhost/",
    b"proxy/localhost:/",
    b"proxy/localhost:http/",
    b"proxy/localhost:80a/",
    b"proxy/localhost:0/",
    b"proxy/localhost:65536/",
    b"proxy/:8000/",
    b"proxy/::1:8000/",  # IPv6 needs brackets
    b"proxy/[::1/",
    b"proxy/[zz::1]:80/",
    b"proxy/local%68ost:8000/",
    b"proxy/absolute/user@localhost:8000/",
]


@pytest.mark.parametrize("rest", NOT_FOUND)
def test_not_found(base: bytes, rest: bytes) -> None:
    assert route(base, rest) == Reject(404, "No route matches this URL.")


def test_other_prefix_is_not_found() -> None:
    base = f"/{PID}/".encode()
    for target in (b"/", b"/other/port/8000/", b"/6f9e3d2c/port/8000/", b"/" + PID.upper().encode() + b"/port/8000/"):
        assert route_project(routing(base), target) == Reject(404, "No route matches this URL.")


def test_target_host_option() -> None:
    base = f"/{PID}/".encode()
    for rest in (b"port/8000/", b"server/8000/", b"proxy/8000/", b"proxy/absolute/8000/"):
        assert route(base, rest, target_host="::1").host == "::1"
    # an explicit HOST:PORT is not replaced by the target host
    assert route(base, b"proxy/localhost:8000/", target_host="10.0.0.1").host == "localhost"


# ----------------------------------------------------------------- allowlist


@pytest.mark.parametrize(
    "segment,host,port",
    [
        (b"[::1]:8888", "::1", 8888),
        (b"db.example.org:5000", "db.example.org", 5000),
        (b"DB.Example.ORG:5000", "DB.Example.ORG", 5000),
        (b"10.1.2.3:80", "10.1.2.3", 80),
    ],
)
def test_allowlisted_hosts_with_wildcards_and_ipv6(segment: bytes, host: str, port: int) -> None:
    allow = HostAllowlist(["*.example.org", "::1", "10.1.2.*"])
    base = b"/"
    for rest, target in ((b"proxy/" + segment + b"/x", b"/x"), (b"proxy/absolute/" + segment + b"/x", None)):
        got = route(base, rest, allowlist=allow)
        assert (got.host, got.port) == (host, port)
        assert got.target == (target if target is not None else base + rest)


@pytest.mark.parametrize(
    "segment,shown",
    [
        (b"evil.com:80", "evil.com"),
        (b"example.org:80", "example.org"),
        (b"[::2]:80", "[::2]"),
        (b"10.1.3.3:22", "10.1.3.3"),
    ],
)
def test_host_not_on_allowlist_is_403(segment: bytes, shown: str) -> None:
    allow = HostAllowlist(["*.example.org", "::1", "10.1.2.*"])
    for prefix in (b"proxy/", b"proxy/absolute/"):
        for tail in (b"/x", b""):  # the check comes before the trailing-slash redirect
            assert route(b"/", prefix + segment + tail, allowlist=allow) == Reject(
                403, f"Host '{shown}' is not allowed."
            )


def test_default_allowlist_refuses_other_hosts() -> None:
    assert route(b"/", b"proxy/example.org:80/").status == 403
    assert route(b"/", b"proxy/127.0.0.2:80/").status == 403


def test_callable_allowlist_gets_the_handler() -> None:
    seen = []

    def check(handler, host):
        seen.append((handler, host))
        return host == "ok.internal"

    cfg = routing(b"/", allowlist=HostAllowlist(check))
    handler = object()
    assert route_project(cfg, b"/proxy/ok.internal:80/", handler).host == "ok.internal"
    assert route_project(cfg, b"/proxy/no.internal:80/", handler).status == 403
    assert seen == [(handler, "ok.internal"), (handler, "no.internal")]


def test_callable_allowlist_that_raises_is_403_not_an_exception() -> None:
    def broken(handler, host):
        raise KeyError(host)

    heard = []
    allow = HostAllowlist(broken, on_error=lambda host, e: heard.append((host, type(e))))
    assert route_project(routing(b"/", allowlist=allow), b"/proxy/h:80/").status == 403
    assert heard == [("h", KeyError)]  # the role logs it: the operator learns why
    assert route_project(routing(b"/", allowlist=HostAllowlist(broken)), b"/proxy/h:80/").status == 403


def test_plain_port_routes_do_not_consult_the_allowlist() -> None:
    cfg = routing(b"/", allowlist=HostAllowlist([]), target_host="localhost")
    assert route_project(cfg, b"/proxy/8000/").host == "localhost"
    assert route_project(cfg, b"/proxy/localhost:8000/").status == 403


# ------------------------------------------------------ %2f and dot-segments


@pytest.mark.parametrize(
    "rest",
    [
        b"port%2f8000/x",
        b"port%2F8000/x",
        b"port/8000%2fx/",
        b"server/80%2F00/",
        b"server%2f8000",
        b"proxy/8000%2f/",
        b"proxy/absolute%2f8000/x",
        b"proxy/absolute/8000%2Fx/",
        b"proxy/localhost%2f:8000/",
        b"proxy/localhost:80%2f/",
        b"lab%2ftree/",
        b"la%2Fb",
    ],
)
def test_encoded_slash_in_routing_prefix_is_400(base: bytes, rest: bytes) -> None:
    got = route(base, rest)
    assert isinstance(got, Reject) and got.status == 400, got


@pytest.mark.parametrize(
    "target",
    [
        f"/{PID}%2fport/8000/".encode(),
        f"/{PID}%2Fserver/8000/".encode(),
        f"/foo%2f{PID}/port/8000/".encode(),
    ],
)
def test_encoded_slash_in_the_base_is_400(target: bytes) -> None:
    for base in (f"/{PID}/".encode(), f"/foo/{PID}/".encode()):
        if target.startswith(b"/foo") != base.startswith(b"/foo"):
            continue
        got = route_project(routing(base), target)
        assert isinstance(got, Reject) and got.status == 400, (base, target, got)


@pytest.mark.parametrize(
    "rest,expected_target",
    [
        (b"server/8888/api/contents/dir%2Ffile.txt", b"/api/contents/dir%2Ffile.txt"),
        (b"server/8888/a%2fb%2Fc?path=x%2Fy", b"/a%2fb%2Fc?path=x%2Fy"),
        (b"proxy/8888/files/a%2F", b"/files/a%2F"),
        (b"lab/api/contents/a%2fb", b"/api/contents/a%2fb"),
    ],
)
def test_encoded_slash_after_the_prefix_is_forwarded_verbatim(base: bytes, rest: bytes, expected_target: bytes) -> None:
    got = route(base, rest)
    assert (got.rest if isinstance(got, Named) else got.target) == expected_target


def test_encoded_slash_after_the_prefix_verbatim_on_full_path_routes(base: bytes) -> None:
    for rest in (b"port/8888/a%2Fb", b"proxy/absolute/8888/a%2fb"):
        assert route(base, rest).target == base + rest


@pytest.mark.parametrize(
    "rest",
    [
        b"server/8000/../9000/",
        b"server/8000/./x",
        b"server/8000/x/..",
        b"server/8000/%2e%2e/9000/",
        b"server/8000/%2E%2E/9000/",
        b"server/8000/%2e%2E/",
        b"server/8000/.%2e/",
        b"server/8000/..%2f9000/",
        b"server/8000/x%2f..%2fy",
        b"port/8000/%2e/",
        b"proxy/8000/a/%2E",
        b"../etc/passwd",
        b"%2e%2e/port/8000/",
        b"./port/8000/",
        b"lab/../port/22/",
    ],
)
def test_dot_segments_anywhere_are_400(base: bytes, rest: bytes) -> None:
    got = route(base, rest)
    assert got == Reject(400, "Paths with . or .. segments are not allowed.")


def test_dot_segment_in_the_base_is_400() -> None:
    base = f"/foo/{PID}/".encode()
    for target in (b"/foo/../" + PID.encode() + b"/port/80/", b"/foo/%2E/x"):
        assert route_project(routing(base), target).status == 400


def test_dots_in_the_query_are_not_dot_segments(base: bytes) -> None:
    got = route(base, b"server/8000/x?path=../../etc&y=%2e%2e")
    assert got.target == b"/x?path=../../etc&y=%2e%2e"


@pytest.mark.parametrize(
    "query",
    [b"?", b"?a=1&a=2", b"?x=%2F%2f%2e", b"?q=caf\xc3\xa9&sp=a+b", b'?j={"a":[1,2]}', b"?nested?q=1", b"?=&&="],
)
def test_query_preserved_byte_for_byte(base: bytes, query: bytes) -> None:
    assert route(base, b"server/8000/p" + query).target == b"/p" + query
    assert route(base, b"port/8000/p" + query).target == base + b"port/8000/p" + query
    assert route(base, b"lab/p" + query).rest == b"/p" + query
    assert route(base, b"server/8000" + query).location == base + b"server/8000/" + query


def test_non_absolute_targets_are_400() -> None:
    for target in (b"*", b"http://example.org/", b"example.org:443"):
        assert route_project(routing(b"/"), target).status == 400


def test_percent_encoding_and_odd_bytes_after_prefix_are_untouched(base: bytes) -> None:
    rest = b'server/8000/%41%zz/"<>{}|^`/\xff\x80'
    assert route(base, rest).target == b'/%41%zz/"<>{}|^`/\xff\x80'
