"""Forwarded request and response heads (cocalcproxy/routing/forwarding.py, SPEC §3):
X-Forwarded-* for trusted and untrusted peers, hop-by-hop headers, upgrades,
repeated headers, context-path headers and Location rewriting."""

from __future__ import annotations

import pytest

from cocalcproxy.http1 import parse_request_head, parse_response_head
from cocalcproxy.routing.headers import Peer, request_head_bytes, response_head_bytes, rewrite_location

UNTRUSTED = Peer(b"203.0.113.7", False, b"https", b"443")
TRUSTED = Peer(b"127.0.0.1", True, b"http", b"8080")
CTX = b"/pid/server/8000"


def parse(head: bytes):
    return parse_request_head(head + b"\r\n" if not head.endswith(b"\r\n") else head)


def lines_of(out: bytes) -> list[bytes]:
    assert out.endswith(b"\r\n\r\n")
    return out[:-4].split(b"\r\n")


def lines_named(out: list[bytes], lname: bytes) -> list[bytes]:
    """The lines of header ``lname`` (lower case), in order."""
    return [x for x in out if x.lower().startswith(lname + b":")]


def forward(head: bytes, peer: Peer = TRUSTED, target: bytes = b"/t", context: bytes | None = None) -> list[bytes]:
    return lines_of(request_head_bytes(parse_request_head(head), target, peer, context))


def head(*lines: bytes, line: bytes = b"GET /orig?q=1 HTTP/1.1") -> bytes:
    return b"".join(x + b"\r\n" for x in (line, *lines))


def test_only_the_target_changes_in_the_request_line() -> None:
    out = forward(head(b"Host: h", line=b"PATCH /a/b?x HTTP/1.0"), target=b"/c?x")
    assert out[0] == b"PATCH /c?x HTTP/1.0"


def test_kept_headers_are_raw_lines_in_order() -> None:
    raw = [b"HoSt:  h.example ", b"Cookie: a=1", b"X-Custom:odd  spacing\t", b"cookie: b=2", b"Accept: */*"]
    out = forward(head(*raw), peer=Peer(b"", True))
    assert out[1:6] == raw


# ------------------------------------------------------------- X-Forwarded-*

XF_HEADERS = [
    b"X-Forwarded-For: 6.6.6.6",
    b"X-Forwarded-Proto: gopher",
    b"X-Forwarded-Host: evil.example",
    b"X-Forwarded-Port: 1",
    b"X-Forwarded-Prefix: /evil",
    b"X-Forwarded-Context: /evil",
    b"X-ProxyContextPath: /evil",
    b"x-forwarded-ssl: on",
]


def test_untrusted_peer_xf_headers_removed_and_set_afresh() -> None:
    out = forward(head(b"Host: h.example:8443", *XF_HEADERS, b"Accept: x"), peer=UNTRUSTED)
    assert out == [
        b"GET /t HTTP/1.1",
        b"Host: h.example:8443",
        b"Accept: x",
        b"X-Forwarded-For: 203.0.113.7",
        b"X-Forwarded-Proto: https",
        b"X-Forwarded-Host: h.example:8443",
        b"X-Forwarded-Port: 443",
    ]


def test_untrusted_peer_without_any_xf_headers() -> None:
    out = forward(head(b"Host: h"), peer=Peer(b"::1", False, b"http", b"80"))
    assert out[2:] == [
        b"X-Forwarded-For: ::1",
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: h",
        b"X-Forwarded-Port: 80",
    ]


def test_trusted_peer_appends_to_xff_and_keeps_the_rest() -> None:
    out = forward(head(b"Host: h", *XF_HEADERS[:4]), peer=TRUSTED)
    assert out[1:] == [
        b"Host: h",
        b"X-Forwarded-For: 6.6.6.6, 127.0.0.1",
        b"X-Forwarded-Proto: gopher",
        b"X-Forwarded-Host: evil.example",
        b"X-Forwarded-Port: 1",
    ]


def test_trusted_peer_sets_missing_xf_headers() -> None:
    out = forward(head(b"Host: h", b"X-Forwarded-Proto: https"), peer=TRUSTED)
    assert out[1:] == [
        b"Host: h",
        b"X-Forwarded-Proto: https",
        b"X-Forwarded-For: 127.0.0.1",
        b"X-Forwarded-Host: h",
        b"X-Forwarded-Port: 8080",
    ]


def test_trusted_peer_repeated_xff_appends_to_the_last_one() -> None:
    out = forward(head(b"Host: h", b"X-Forwarded-For: 1.1.1.1", b"X-Forwarded-For: 2.2.2.2, 3.3.3.3  "), peer=TRUSTED)
    assert out[2:4] == [b"X-Forwarded-For: 1.1.1.1", b"X-Forwarded-For: 2.2.2.2, 3.3.3.3, 127.0.0.1"]


def test_trusted_peer_keeps_other_xf_headers_when_no_context_path() -> None:
    out = forward(head(b"Host: h", b"X-Forwarded-Prefix: /outer", b"X-ProxyContextPath: /outer"), peer=TRUSTED)
    assert b"X-Forwarded-Prefix: /outer" in out and b"X-ProxyContextPath: /outer" in out


def test_unix_socket_peer_gets_no_xff_entry() -> None:
    out = forward(head(b"Host: h", b"X-Forwarded-For: 1.1.1.1"), peer=Peer(b"", True, b"http", b""))
    assert out[1:] == [b"Host: h", b"X-Forwarded-For: 1.1.1.1", b"X-Forwarded-Proto: http", b"X-Forwarded-Host: h"]
    out = forward(head(b"Host: h", b"X-Forwarded-For: 1.1.1.1"), peer=Peer(b"", False, b"http", b""))
    assert out[1:] == [b"Host: h", b"X-Forwarded-Proto: http", b"X-Forwarded-Host: h"]


def test_http10_without_host_gets_no_forwarded_host() -> None:
    out = forward(head(line=b"GET / HTTP/1.0"), peer=UNTRUSTED)
    assert not any(x.lower().startswith(b"x-forwarded-host") for x in out)
    assert b"X-Forwarded-For: 203.0.113.7" in out


# ------------------------------------------------------------------ hop-by-hop


def test_hop_by_hop_headers_are_removed() -> None:
    out = forward(
        head(
            b"Host: h",
            b"Connection: keep-alive, X-Secret, x-other",
            b"Keep-Alive: timeout=5",
            b"Proxy-Connection: keep-alive",
            b"TE: trailers",
            b"Trailer: X-Sum",
            b"Upgrade: h2c",
            b"X-Secret: s",
            b"X-OTHER: o",
            b"Proxy-Authorization: Basic abc",
            b"X-Kept: k",
        ),
        peer=Peer(b"", True),
    )
    assert out[1:] == [
        b"Host: h",
        b"Proxy-Authorization: Basic abc",
        b"X-Kept: k",
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: h",
    ]


def test_transfer_encoding_is_kept_for_a_forwarded_chunked_body() -> None:
    out = forward(head(b"Host: h", b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.1"), peer=Peer(b"", True))
    assert b"Transfer-Encoding: chunked" in out


@pytest.mark.parametrize(
    "named,kept",
    [
        (b"content-length", b"Content-Length: 5"),
        (b"Content-Length", b"Content-Length: 5"),
        (b"host", b"Host: h"),
    ],
)
def test_connection_cannot_remove_framing_or_host_from_a_request(named: bytes, kept: bytes) -> None:
    """Dropping Content-Length while forwarding its body would smuggle the body to the
    backend as a second request; SPEC §3 also says Host is preserved."""
    raw = head(b"Host: h", b"Connection: " + named, b"Content-Length: 5", line=b"POST / HTTP/1.1")
    assert kept in forward(raw, peer=Peer(b"", True))


def test_connection_cannot_remove_transfer_encoding_from_a_request() -> None:
    raw = head(b"Host: h", b"Connection: transfer-encoding", b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.1")
    out = forward(raw, peer=Peer(b"", True))
    assert b"Transfer-Encoding: chunked" in out
    reparsed = parse_request_head(b"\r\n".join(out) + b"\r\n")
    assert reparsed.chunked


def test_upgrade_keeps_upgrade_and_says_connection_upgrade() -> None:
    out = forward(
        head(
            b"Host: h",
            b"Connection: Upgrade, X-Hop",
            b"Upgrade: websocket",
            b"X-Hop: gone",
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            b"Sec-WebSocket-Version: 13",
        ),
        peer=Peer(b"", True),
    )
    assert out[1:] == [
        b"Host: h",
        b"Upgrade: websocket",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: h",
        b"Connection: upgrade",
    ]


def test_upgrade_header_without_connection_upgrade_is_dropped() -> None:
    out = forward(head(b"Host: h", b"Upgrade: websocket"), peer=Peer(b"", True))
    assert not any(x.lower().startswith((b"upgrade", b"connection")) for x in out)


def test_repeated_headers_keep_order_and_are_never_merged() -> None:
    raw = [b"Cookie: a=1", b"X-A: 1", b"Cookie: b=2", b"X-A: 2", b"cookie: c=3"]
    out = forward(head(b"Host: h", *raw), peer=UNTRUSTED)
    assert out[2:7] == raw


# ---------------------------------------------------------------- context path


def test_context_path_headers_are_set() -> None:
    out = forward(head(b"Host: h"), peer=Peer(b"", True), context=CTX)
    assert out[-3:] == [
        b"X-Forwarded-Context: /pid/server/8000",
        b"X-ProxyContextPath: /pid/server/8000",
        b"X-Forwarded-Prefix: /pid/server/8000",
    ]


@pytest.mark.parametrize("peer", [TRUSTED, UNTRUSTED], ids=["trusted", "untrusted"])
def test_client_context_headers_are_replaced_never_doubled(peer: Peer) -> None:
    out = forward(head(b"Host: h", *XF_HEADERS[4:7]), peer=peer, context=CTX)
    for name in (b"x-forwarded-context", b"x-proxycontextpath", b"x-forwarded-prefix"):
        values = lines_named(out, name)
        assert values == [values[0].split(b":")[0] + b": " + CTX], name


def test_no_context_path_no_context_headers_from_us() -> None:
    out = forward(head(b"Host: h"), peer=UNTRUSTED, context=None)
    assert not any(b"Context" in x or b"Prefix" in x for x in out)


@pytest.mark.parametrize("peer", [TRUSTED, UNTRUSTED], ids=["trusted", "untrusted"])
def test_set_headers_replace_the_clients_lines_and_ours_but_never_framing(peer: Peer) -> None:
    req = parse_request_head(head(b"Host: h", b"X-User: client", b"x-user: again", b"Cookie: a=1", b"Accept: */*",
                                  b"X-Forwarded-Host: spoofed", b"Content-Length: 3"))
    out = lines_of(request_head_bytes(req, b"/t", peer, CTX, set_headers=(
        (b"X-User", b"server"), (b"x-forwarded-host", b"fixed"), (b"X-Forwarded-Prefix", b"/p"),
        (b"Cookie", b"b=2"), (b"Content-Length", b"99"))))
    assert out[1:4] == [b"Host: h", b"Accept: */*", b"Content-Length: 3"]  # the client's others, in order
    assert lines_named(out, b"x-user") == [b"X-User: server"]
    assert lines_named(out, b"x-forwarded-host") == [b"x-forwarded-host: fixed"]
    assert lines_named(out, b"x-forwarded-prefix") == [b"X-Forwarded-Prefix: /p"]
    assert lines_named(out, b"cookie") == [b"Cookie: b=2"]
    assert lines_named(out, b"content-length") == [b"Content-Length: 3"]
    assert out[-4:] == [b"X-User: server", b"x-forwarded-host: fixed", b"X-Forwarded-Prefix: /p", b"Cookie: b=2"]


# ------------------------------------------------------------------ responses


def respond(raw: bytes, **kw) -> list[bytes]:
    kw.setdefault("keep_alive", True)
    kw.setdefault("client_is_11", True)
    kw.setdefault("reframe", False)
    kw.setdefault("context_path", None)
    return lines_of(response_head_bytes(parse_response_head(raw), **kw))


def rhead(*lines: bytes, line: bytes = b"HTTP/1.1 200 OK") -> bytes:
    return b"".join(x + b"\r\n" for x in (line, *lines))


def test_response_status_line_and_headers_raw() -> None:
    raw = [b"Set-Cookie: a=1; Path=/", b"content-TYPE:  text/plain ", b"set-cookie: b=2", b"Content-Length: 3"]
    assert respond(rhead(*raw, line=b"HTTP/1.1 299 Odd  Reason")) == [b"HTTP/1.1 299 Odd  Reason", *raw]


def test_response_status_line_carries_our_http_version() -> None:
    """RFC 9110 §2.5: an HTTP/1.0 backend's answer goes out as HTTP/1.1, reason kept."""
    raw = [b"Content-Length: 3"]
    assert respond(rhead(*raw, line=b"HTTP/1.0 299 Odd  Reason")) == [b"HTTP/1.1 299 Odd  Reason", *raw]


def test_response_hop_by_hop_removed() -> None:
    out = respond(
        rhead(
            b"Connection: keep-alive, X-Private",
            b"Keep-Alive: timeout=5",
            b"Proxy-Connection: keep-alive",
            b"Trailer: X-Sum",
            b"TE: trailers",
            b"Upgrade: h2c",
            b"X-Private: p",
            b"Content-Length: 0",
        )
    )
    assert out == [b"HTTP/1.1 200 OK", b"Content-Length: 0"]


def test_response_connection_cannot_remove_framing() -> None:
    """A backend's ``Connection: content-length`` must not make the client lose the
    body's framing while we forward the body (response desync)."""
    out = respond(rhead(b"Connection: content-length", b"Content-Length: 5"))
    assert b"Content-Length: 5" in out
    out = respond(rhead(b"Connection: Transfer-Encoding", b"Transfer-Encoding: chunked"))
    assert b"Transfer-Encoding: chunked" in out


@pytest.mark.parametrize(
    "keep_alive,client_is_11,added",
    [
        (True, True, None),
        (False, True, b"Connection: close"),
        (True, False, b"Connection: keep-alive"),
        (False, False, b"Connection: close"),
    ],
)
def test_response_connection_header_for_the_client(keep_alive: bool, client_is_11: bool, added) -> None:
    out = respond(rhead(b"Content-Length: 0", b"Connection: close"), keep_alive=keep_alive, client_is_11=client_is_11)
    assert out[1:] == [b"Content-Length: 0"] + ([added] if added else [])


def test_response_101_keeps_upgrade() -> None:
    out = respond(
        rhead(
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Accept: x",
            line=b"HTTP/1.1 101 Switching Protocols",
        ),
        upgrade=True,
    )
    assert out == [
        b"HTTP/1.1 101 Switching Protocols",
        b"Upgrade: websocket",
        b"Sec-WebSocket-Accept: x",
        b"Connection: upgrade",
    ]


def test_response_te_wins_over_content_length() -> None:
    out = respond(rhead(b"Content-Length: 10", b"Transfer-Encoding: chunked"))
    assert out == [b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked"]


def test_response_reframed_for_http10_drops_framing_headers() -> None:
    out = respond(
        rhead(b"Transfer-Encoding: chunked", b"Content-Type: text/plain"),
        keep_alive=False,
        client_is_11=False,
        reframe=True,
    )
    assert out == [b"HTTP/1.1 200 OK", b"Content-Type: text/plain", b"Connection: close"]


# ----------------------------------------------------------- Location rewrite


@pytest.mark.parametrize(
    "location,rewritten",
    [
        (b"/login", CTX + b"/login"),
        (b"/", CTX + b"/"),
        (b"/?next=/x", CTX + b"/?next=/x"),
        (b"/pid/server/80001/x", CTX + b"/pid/server/80001/x"),  # only looks like the prefix
        (b"/pid/server/8000x", CTX + b"/pid/server/8000x"),
        (b"/pid/server/8000", b"/pid/server/8000"),  # already carries it
        (b"/pid/server/8000/", b"/pid/server/8000/"),
        (b"/pid/server/8000/lab?x=1", b"/pid/server/8000/lab?x=1"),
        (b"/pid/server/8000?x=1", b"/pid/server/8000?x=1"),
        (b"/pid/server/8000#frag", b"/pid/server/8000#frag"),
        (b"login", b"login"),  # relative
        (b"./login", b"./login"),
        (b"../up", b"../up"),
        (b"?q=1", b"?q=1"),
        (b"#top", b"#top"),
        (b"//other.example/x", b"//other.example/x"),  # scheme-relative
        (b"http://example.org/x", b"http://example.org/x"),
        (b"https://example.org/", b"https://example.org/"),
        (b"", b""),
    ],
)
def test_rewrite_location(location: bytes, rewritten: bytes) -> None:
    assert rewrite_location(location, CTX) == rewritten


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308, 399])
def test_location_rewritten_on_3xx(status: int) -> None:
    out = respond(rhead(b"location: /x", b"Content-Length: 0", line=b"HTTP/1.1 %d R" % status), context_path=CTX)
    assert out[1] == b"Location: " + CTX + b"/x"


@pytest.mark.parametrize("status", [200, 201, 204, 400, 404])
def test_location_left_alone_outside_3xx(status: int) -> None:
    out = respond(rhead(b"Location: /x", b"Content-Length: 0", line=b"HTTP/1.1 %d R" % status), context_path=CTX)
    assert out[1] == b"Location: /x"


def test_location_left_alone_without_context_path() -> None:
    """port/, proxy/absolute/ and absolute_url routes keep the full path: never rewrite."""
    out = respond(rhead(b"Location: /x", line=b"HTTP/1.1 302 Found"), context_path=None)
    assert out[1] == b"Location: /x"


def test_unchanged_location_keeps_its_raw_line() -> None:
    out = respond(rhead(b"LOCATION:   https://e.org/x  ", line=b"HTTP/1.1 302 Found"), context_path=CTX)
    assert out[1] == b"LOCATION:   https://e.org/x  "
