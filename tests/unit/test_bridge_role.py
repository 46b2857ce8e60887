"""The bridge role's parts that need no sockets: target strings, token files,
``--web`` lookups, the pure route decisions and the role's router, options."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import usage

from cocalcproxy.http1.head import parse_request_head
from cocalcproxy.registry.tokens import TokenTable, parse_token_lines
from cocalcproxy.roles.bridge.router import BridgeRouter
from cocalcproxy.roles.bridge.webroot import FileFound, NeedsSlash, WebRoot, read_small
from cocalcproxy.routing.addresses import Address, AddressError, parse_endpoint_target
from cocalcproxy.routing.bridge import BridgeRouting, BridgeTo, WebFile, route_bridge
from cocalcproxy.routing.types import Handoff, Local, Redirect, Reject
from cocalcproxy.wsbridge import BridgeFactory


# ------------------------------------------------------------ target strings

@pytest.mark.parametrize(
    "text, address, timeout",
    [
        ("tcp:127.0.0.1:5900", Address("127.0.0.1", 5900), None),
        ("tcp:[::1]:5901", Address("::1", 5901), None),
        ("tcp:::1:5902", Address("::1", 5902), None),
        ("tcp:\\:\\:1:5903", Address("::1", 5903), None),
        ("tcp:host=127.0.0.1:port=5904", Address("127.0.0.1", 5904), None),
        ("tcp:host=127.0.0.1:port=5904:timeout=2.5", Address("127.0.0.1", 5904), 2.5),
        ("tcp:localhost:5905", Address("localhost", 5905), None),
        ("tcp:vnc.example.org:5906", Address("vnc.example.org", 5906), None),
        ("unix:/run/vnc.sock", Address.unix("/run/vnc.sock"), None),
        ("unix:path=/run/vnc.sock", Address.unix("/run/vnc.sock"), None),
    ],
)
def test_target_strings(text, address, timeout):
    assert parse_endpoint_target(text) == (address, timeout)


@pytest.mark.parametrize("text", ["nope", "tcp:", "tcp:host", "tcp:127.0.0.1:http", "tcp:127.0.0.1:70000",
                                  "tcp:a b:1", "tcp:a@b:1", "unix:", "tcp:host=x", "tcp:host=h:port=1:timeout=x"])
def test_bad_target_strings(text):
    with pytest.raises(AddressError):
        parse_endpoint_target(text)


def test_other_endpoint_types_are_left_to_twisted():
    assert parse_endpoint_target("tls:vnc.example.org:5900") is None


# -------------------------------------------------------------- token files

def test_token_lines():
    table = parse_token_lines(
        "# comment\n\nvnc1: 127.0.0.1:5901\n  vnc2 :  [::1]:5902  \nsock: unix_socket:/tmp/x.sock\n"
        "bad line\nbadport: host:99999\nv6: ::1:5903\nat: user@host:1\n"
    )
    assert table == {
        "vnc1": Address("127.0.0.1", 5901),
        "vnc2": Address("::1", 5902),
        "sock": Address.unix("/tmp/x.sock"),
        "v6": Address("::1", 5903),
    }


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_token_file_is_reread_when_changed_at_most_once_a_second(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("a: 127.0.0.1:1000\n")
    clock = Clock()
    table = TokenTable(str(path), now=clock)
    assert table.lookup("a") == Address("127.0.0.1", 1000)
    path.write_text("a: 127.0.0.1:2000\nb: unix_socket:/s\n")
    clock.now += 0.5
    assert table.lookup("a") == Address("127.0.0.1", 1000)  # not checked yet
    clock.now += 0.6
    assert table.lookup("a") == Address("127.0.0.1", 2000)
    assert table.lookup("b") == Address.unix("/s")
    path.unlink()
    clock.now += 2
    assert table.lookup("b") == Address.unix("/s")  # unreadable: the last good table stays


def test_token_directory_reads_every_file_and_sees_new_ones(tmp_path):
    (tmp_path / "one").write_text("a: 127.0.0.1:1\n")
    (tmp_path / ".hidden").write_text("h: 127.0.0.1:9\n")
    clock = Clock()
    table = TokenTable(str(tmp_path), now=clock)
    assert table.lookup("a") == Address("127.0.0.1", 1) and table.lookup("h") is None
    (tmp_path / "two").write_text("b: 127.0.0.1:2\n")
    clock.now += 1
    assert table.lookup("b") == Address("127.0.0.1", 2)
    (tmp_path / "one").unlink()
    clock.now += 1
    assert table.lookup("a") is None


# ------------------------------------------------------------------ --web

def test_web_root_lookups(tmp_path):
    (tmp_path / "index.html").write_text("<h1>hi</h1>")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "ui.js").write_text("x=1")
    (tmp_path / "app" / "a b.css").write_text("b{}")
    (tmp_path / ".secret").write_text("no")
    (tmp_path / "noindex").mkdir()
    web = WebRoot(str(tmp_path))
    found = web.resolve(b"")
    assert type(found) is FileFound and found.path.endswith("index.html") and found.ctype == b"text/html; charset=utf-8"
    assert web.resolve(b"app/ui.js").ctype == b"text/javascript; charset=utf-8"
    assert web.resolve(b"app/a%20b.css").ctype == b"text/css; charset=utf-8"
    assert type(web.resolve(b"app")) is NeedsSlash
    assert web.resolve(b"app/") is None  # no index.html there, no listing
    assert web.resolve(b"noindex/") is None
    assert web.resolve(b"missing.js") is None
    assert web.resolve(b".secret") is None
    assert web.resolve(b"app/%00x") is None
    assert web.resolve(b"%ff") is None
    assert read_small(found.path) == (200, b"<h1>hi</h1>", b"text/html; charset=utf-8")


# ------------------------------------------------------ pure route decisions

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def upgrade(path: bytes) -> bytes:
    return (b"GET " + path + b" HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")


def _req(raw: bytes):
    assert raw.endswith(b"\r\n\r\n")
    return parse_request_head(raw[:-2])


@pytest.mark.parametrize("raw, fixed, web, expected", [
    (upgrade(b"/any/path?x"), True, False, BridgeTo(None)),
    (upgrade(b"/websockify?token=vnc&x=1"), False, False, BridgeTo("vnc")),
    (upgrade(b"/"), False, False, Reject(404, "A token is required: ?token=NAME.")),
    (upgrade(b"/a/../b"), True, False, Reject(400, "Paths with . or .. segments are not allowed.")),
    (b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", True, False, Local("healthz")),
    (b"GET /vnc.html HTTP/1.1\r\nHost: h\r\n\r\n", True, False,
     Reject(405, "This address only accepts WebSocket connections.", (b"Allow: GET",))),
    (b"POST /vnc.html HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", True, True,
     Reject(405, "Only GET and HEAD are allowed here.", (b"Allow: GET, HEAD",))),
    (b"GET /core?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", True, True, WebFile(b"core", b"/core", b"?x=1")),
    (b"GET //evil.com/ HTTP/1.1\r\nHost: h\r\n\r\n", True, True, Reject(404, "No such file.")),
])
def test_route_bridge(raw, fixed, web, expected):
    assert route_bridge(BridgeRouting(b"/", fixed, web), _req(raw)) == expected


# -------------------------------------------------------------- role router

class FakeEndpoint:
    def connect(self, factory):  # pragma: no cover - never connected in these tests
        raise AssertionError("no connection expected")


def _router(tmp_path=None, tokens=None, base=b"/"):
    clock = MemoryReactorClock()
    routing = BridgeRouting(base, fixed_target=tokens is None, web=tmp_path is not None)
    return BridgeRouter(clock, BridgeFactory(clock), routing, target=None if tokens else FakeEndpoint(),
                        tokens=tokens, web=WebRoot(str(tmp_path)) if tmp_path else None)


def test_router_with_web(tmp_path):
    (tmp_path / "vnc.html").write_text("novnc")
    (tmp_path / "core").mkdir()
    (tmp_path / "big.bin").write_bytes(b"\0" * (1024 * 1024 + 1))
    r = _router(tmp_path, base=b"/desk/")
    route = r.route(_req(b"GET /desk/vnc.html HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert type(route) is Local and r.local_page(route, None) == (200, b"novnc", b"text/html; charset=utf-8")
    assert r.route(_req(b"GET /desk/core?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")) == Redirect(b"/desk/core/?x=1")
    assert r.route(_req(b"GET /desk/nope HTTP/1.1\r\nHost: h\r\n\r\n")).status == 404
    assert r.route(_req(b"GET /vnc.html HTTP/1.1\r\nHost: h\r\n\r\n")).status == 404  # outside the base
    assert r.route(_req(b"GET /desk/healthz HTTP/1.1\r\nHost: h\r\n\r\n")) == Local("healthz")
    big = r.route(_req(b"HEAD /desk/big.bin HTTP/1.1\r\nHost: h\r\n\r\n"))
    ct = StringTransport()
    big.start(ct, b"")
    assert ct.value().startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 1048577\r\n" in ct.value()
    assert ct.value().endswith(b"\r\n\r\n") and ct.disconnecting


def test_an_empty_segment_after_the_base_is_404_never_a_redirect_off_site(tmp_path):
    (tmp_path / "evil.com").mkdir()
    r = _router(tmp_path)
    assert r.route(_req(b"GET /evil.com HTTP/1.1\r\nHost: h\r\n\r\n")) == Redirect(b"/evil.com/")
    assert r.route(_req(b"GET //evil.com HTTP/1.1\r\nHost: h\r\n\r\n")).status == 404  # not Location: //evil.com/
    assert r.route(_req(b"GET //evil.com/ HTTP/1.1\r\nHost: h\r\n\r\n")).status == 404


def test_a_large_file_that_grows_while_streamed_is_cut_at_its_content_length(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * (2 * 1024 * 1024))
    r = _router(tmp_path)
    route = r.route(_req(b"GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n"))
    ct = StringTransport()
    route.start(ct, b"")
    with open(path, "ab") as f:
        f.write(b"b" * 500_000)  # appended after the head (Content-Length) was sent
    for _ in range(10):
        r.reactor.advance(0)
    head, _, body = ct.value().partition(b"\r\n\r\n")
    assert b"Content-Length: 2097152" in head
    assert body == b"a" * (2 * 1024 * 1024) and ct.disconnecting


def test_router_with_tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("vnc: 127.0.0.1:5901\nsock: unix_socket:/tmp/s\n")
    r = _router(tokens=TokenTable(str(path)))
    assert r.route(_req(upgrade(b"/"))).status == 404
    assert r.route(_req(upgrade(b"/?token=other"))) == Reject(404, "Unknown token.")
    first = r.route(_req(upgrade(b"/websockify?token=vnc")))
    again = r.route(_req(upgrade(b"/other?token=vnc")))
    assert type(first) is Handoff and first.start is again.start  # one start (and endpoint) per target
    assert r.route(_req(upgrade(b"/?token=sock"))).start is not first.start


# ------------------------------------------------------------------ options

def _options(*args):
    from cocalcproxy.roles.bridge import Options

    o = Options()
    o.parseOptions(list(args))
    return o


def test_options(tmp_path):
    config = _options("--target", "tcp:[::1]:5900").config()
    assert config.common.listen == ("tcp:6080",) and config.common.trusted_proxies == ()
    assert config.target == "tcp:[::1]:5900" and config.token_file is None
    (tmp_path / "t").write_text("a: 127.0.0.1:1\n")
    assert _options("--token-file", str(tmp_path / "t")).config().token_file == str(tmp_path / "t")
    for args, message in [
        ((), "exactly one of --target and --token-file"),
        (("--target", "tcp:a:1", "--token-file", str(tmp_path / "t")), "exactly one"),
        (("--target", "tcp:127.0.0.1:x"), "--target: not a port number"),
        (("--target", "bogus:thing"), "--target: 'bogus:thing'"),
        (("--token-file", str(tmp_path / "missing")), "--token-file: no such file"),
        (("--target", "tcp:127.0.0.1:1", "--web", str(tmp_path / "missing")), "--web: not a directory"),
    ]:
        with pytest.raises(usage.UsageError, match=message):
            _options(*args)
