"""Request and response head parsing (cocalcproxy/http1/head.py): SPEC §3 validation
rules and statuses, the framing/keep-alive facts a head carries, raw lines kept."""

from __future__ import annotations

import pytest

from cocalcproxy.http1 import (
    BadRequest,
    BadResponse,
    NotImplementedCoding,
    ProtocolError,
    UriTooLong,
    VersionNotSupported,
    parse_request_head,
    parse_response_head,
)


def req(line: bytes = b"GET / HTTP/1.1", *headers: bytes, host: bool = True) -> bytes:
    """A request head as the reader hands it over: lines ending in CRLF, no empty line."""
    lines = [line]
    if host:
        lines.append(b"Host: example.org")
    lines.extend(headers)
    return b"".join(x + b"\r\n" for x in lines)


def resp(line: bytes = b"HTTP/1.1 200 OK", *headers: bytes) -> bytes:
    return b"".join(x + b"\r\n" for x in (line, *headers))


# --------------------------------------------------------------------- requests

REQUEST_ERRORS = [
    # (id, head, status)
    ("line-two-parts", req(b"GET /"), 400),
    ("line-four-parts", req(b"GET / HTTP/1.1 x"), 400),
    ("line-double-space", req(b"GET  / HTTP/1.1"), 400),
    ("line-leading-space", req(b" GET / HTTP/1.1"), 400),
    ("line-trailing-space", req(b"GET / HTTP/1.1 "), 400),
    ("line-tab-separator", req(b"GET\t/ HTTP/1.1"), 400),
    ("line-empty", req(b""), 400),
    ("version-lowercase", req(b"GET / http/1.1"), 400),
    ("version-garbage", req(b"GET / HTTP/1"), 400),
    ("version-letters", req(b"GET / HTTP/x.y"), 400),
    ("method-not-token", req(b"G(T / HTTP/1.1"), 400),
    ("method-non-ascii", req(b"G\xc3\x89T / HTTP/1.1"), 400),
    ("missing-host-11", req(host=False), 400),
    ("two-hosts", req(b"GET / HTTP/1.1", b"Host: other.org"), 400),
    ("header-no-colon", req(b"GET / HTTP/1.1", b"NoColonHere"), 400),
    ("header-empty-name", req(b"GET / HTTP/1.1", b": value"), 400),
    ("header-space-before-colon", req(b"GET / HTTP/1.1", b"Foo : bar"), 400),
    ("header-tab-before-colon", req(b"GET / HTTP/1.1", b"Foo\t: bar"), 400),
    ("header-name-space", req(b"GET / HTTP/1.1", b"Fo o: bar"), 400),
    ("header-name-at", req(b"GET / HTTP/1.1", b"Fo@o: bar"), 400),
    ("header-name-non-ascii", req(b"GET / HTTP/1.1", b"F\xe9o: bar"), 400),
    ("obs-fold-space", req(b"GET / HTTP/1.1", b"Foo: bar", b" continued"), 400),
    ("obs-fold-tab", req(b"GET / HTTP/1.1", b"Foo: bar", b"\tcontinued"), 400),
    ("value-nul", req(b"GET / HTTP/1.1", b"Foo: a\x00b"), 400),
    ("value-cr", req(b"GET / HTTP/1.1", b"Foo: a\rb"), 400),
    ("value-lf", req(b"GET / HTTP/1.1", b"Foo: a\nb"), 400),
    ("value-control", req(b"GET / HTTP/1.1", b"Foo: a\x01b"), 400),
    ("value-esc", req(b"GET / HTTP/1.1", b"Foo: a\x1bb"), 400),
    ("value-del", req(b"GET / HTTP/1.1", b"Foo: a\x7fb"), 400),
    ("bare-lf-line-end", b"GET / HTTP/1.1\r\nHost: a\nFoo: b\r\n", 400),
    ("cl-letters", req(b"POST / HTTP/1.1", b"Content-Length: abc"), 400),
    ("cl-negative", req(b"POST / HTTP/1.1", b"Content-Length: -1"), 400),
    ("cl-plus", req(b"POST / HTTP/1.1", b"Content-Length: +5"), 400),
    ("cl-hex", req(b"POST / HTTP/1.1", b"Content-Length: 0x5"), 400),
    ("cl-inner-space", req(b"POST / HTTP/1.1", b"Content-Length: 5 5"), 400),
    ("cl-empty", req(b"POST / HTTP/1.1", b"Content-Length:"), 400),
    ("cl-trailing-comma", req(b"POST / HTTP/1.1", b"Content-Length: 5,"), 400),
    ("cl-19-digits", req(b"POST / HTTP/1.1", b"Content-Length: " + b"1" * 19), 400),
    ("cl-differing-one-header", req(b"POST / HTTP/1.1", b"Content-Length: 5, 6"), 400),
    ("cl-differing-two-headers", req(b"POST / HTTP/1.1", b"Content-Length: 5", b"Content-Length: 6"), 400),
    ("cl-and-te", req(b"POST / HTTP/1.1", b"Content-Length: 5", b"Transfer-Encoding: chunked"), 400),
    ("te-and-cl", req(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", b"Content-Length: 5"), 400),
    ("te-in-http10", req(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked"), 400),
    ("te-gzip-only", req(b"POST / HTTP/1.1", b"Transfer-Encoding: gzip"), 400),
    ("te-chunked-then-gzip", req(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked, gzip"), 400),
    ("te-chunked-twice", req(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked, chunked"), 400),
    (
        "te-chunked-two-headers",
        req(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"),
        400,
    ),
    ("te-empty", req(b"POST / HTTP/1.1", b"Transfer-Encoding:"), 400),
    ("te-only-commas", req(b"POST / HTTP/1.1", b"Transfer-Encoding: , ,"), 400),
    ("te-gzip-chunked", req(b"POST / HTTP/1.1", b"Transfer-Encoding: gzip, chunked"), 501),
    (
        "te-gzip-chunked-two-headers",
        req(b"POST / HTTP/1.1", b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"),
        501,
    ),
    ("te-identity-chunked", req(b"POST / HTTP/1.1", b"Transfer-Encoding: identity, chunked"), 501),
    ("version-2", req(b"GET / HTTP/2.0"), 505),
    ("version-3", req(b"GET / HTTP/3.0"), 505),
    ("version-0.9", req(b"GET / HTTP/0.9"), 505),
]

_ERROR_CLASS = {400: BadRequest, 414: UriTooLong, 501: NotImplementedCoding, 505: VersionNotSupported}


@pytest.mark.parametrize("head,status", [r[1:] for r in REQUEST_ERRORS], ids=[r[0] for r in REQUEST_ERRORS])
def test_request_head_errors(head: bytes, status: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request_head(head)
    assert info.value.status == status
    assert isinstance(info.value, _ERROR_CLASS[status])
    # Error text is fixed English: it never echoes request bytes into an error page.
    assert "\x00" not in info.value.message and "example.org" not in info.value.message


# SPEC §3: a request-target with a control byte (0x00-0x20) or DEL is a 400.
# (0x20 itself splits the request line into four parts: also a 400.)
_CONTROL_BYTES = [bytes([b]) for b in range(0x00, 0x21)] + [b"\x7f"]


@pytest.mark.parametrize("byte", _CONTROL_BYTES, ids=[f"0x{b[0]:02x}" for b in _CONTROL_BYTES])
def test_target_control_bytes_are_400(byte: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        parse_request_head(req(b"GET /a" + byte + b"b HTTP/1.1"))
    assert info.value.status == 400


@pytest.mark.parametrize(
    "target",
    [
        b'/a"b<c>d{e}f|g^h`i',
        b"/caf\xc3\xa9/\xff\x80",
        b"/a%2fb%2Fc?x=%20&y=..%2e",
        b"/?",
        b"/path;params?q#frag",
        b"*",
        b"http://example.org/abs",
    ],
)
def test_target_printable_and_high_bytes_are_kept_verbatim(target: bytes) -> None:
    head = parse_request_head(req(b"GET " + target + b" HTTP/1.1"))
    assert head.target == target


def test_request_line_over_limit_is_414_and_checked_first() -> None:
    long_target = b"/" + b"a" * 8192
    # Even with an HTTP version we do not support and a broken header, 414 wins.
    head = b"GET " + long_target + b" HTTP/9.9\r\nbroken header\r\n"
    with pytest.raises(UriTooLong) as info:
        parse_request_head(head)
    assert info.value.status == 414


def test_request_line_exactly_at_limit_is_accepted() -> None:
    line = b"GET /" + b"a" * (8192 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == 8192
    assert parse_request_head(req(line)).target.startswith(b"/aaa")
    with pytest.raises(UriTooLong):
        parse_request_head(req(line[:5] + b"a" + line[5:]))


def test_request_line_limit_is_a_parameter() -> None:
    with pytest.raises(UriTooLong):
        parse_request_head(req(b"GET /abcdef HTTP/1.1"), max_request_line=10)
    assert parse_request_head(req(b"GET / HTTP/1.1"), max_request_line=14).target == b"/"


def test_request_fields_and_raw_lines() -> None:
    head = parse_request_head(
        b"PUT /x?y=1 HTTP/1.1\r\n"
        b"HoSt:   example.org  \r\n"
        b"Set-Thing:first\r\n"
        b"X-Multi: a\r\n"
        b"x-multi:  b \t\r\n"
        b"Empty:\r\n"
        b'Weird: caf\xc3\xa9 "q" <>\r\n'
    )
    assert (head.method, head.target, head.version, head.is_11) == (b"PUT", b"/x?y=1", b"HTTP/1.1", True)
    assert head.headers == [
        (b"host", b"example.org", b"HoSt:   example.org  "),
        (b"set-thing", b"first", b"Set-Thing:first"),
        (b"x-multi", b"a", b"X-Multi: a"),
        (b"x-multi", b"b", b"x-multi:  b \t"),
        (b"empty", b"", b"Empty:"),
        (b"weird", b'caf\xc3\xa9 "q" <>', b'Weird: caf\xc3\xa9 "q" <>'),
    ]
    assert head.host == b"example.org"
    assert head.get(b"x-multi") == b"b"  # the last one
    assert head.get_all(b"x-multi") == [b"a", b"b"]  # never merged, in order
    assert head.get(b"absent") is None and head.get_all(b"absent") == []
    assert head.content_length is None and not head.chunked and not head.has_body


@pytest.mark.parametrize(
    "headers,content_length,chunked,has_body",
    [
        ((), None, False, False),
        ((b"Content-Length: 0",), 0, False, False),
        ((b"Content-Length: 5",), 5, False, True),
        ((b"Content-Length: 005",), 5, False, True),
        ((b"Content-Length: 5, 5",), 5, False, True),
        ((b"Content-Length: 5", b"content-length: 5"), 5, False, True),
        ((b"Content-Length: " + b"9" * 18,), int(b"9" * 18), False, True),
        ((b"Transfer-Encoding: chunked",), None, True, True),
        ((b"Transfer-Encoding: Chunked",), None, True, True),
        ((b"transfer-encoding:  CHUNKED ",), None, True, True),
        ((b"Transfer-Encoding: , chunked",), None, True, True),
    ],
)
def test_request_body_framing(headers, content_length, chunked, has_body) -> None:
    head = parse_request_head(req(b"POST / HTTP/1.1", *headers))
    assert (head.content_length, head.chunked, head.has_body) == (content_length, chunked, has_body)


@pytest.mark.parametrize(
    "version,connection,keep_alive",
    [
        (b"HTTP/1.1", None, True),
        (b"HTTP/1.1", b"close", False),
        (b"HTTP/1.1", b"Close", False),
        (b"HTTP/1.1", b"keep-alive", True),
        (b"HTTP/1.1", b"foo, close", False),
        (b"HTTP/1.0", None, False),
        (b"HTTP/1.0", b"keep-alive", True),
        (b"HTTP/1.0", b"Keep-Alive", True),
        (b"HTTP/1.0", b"foo,  keep-alive ", True),
        (b"HTTP/1.0", b"keep-alive, close", False),
        (b"HTTP/1.0", b"close", False),
    ],
)
def test_request_keep_alive_rules(version, connection, keep_alive) -> None:
    headers = (b"Connection: " + connection,) if connection is not None else ()
    head = parse_request_head(req(b"GET / " + version, *headers))
    assert head.keep_alive is keep_alive
    assert head.is_11 is (version == b"HTTP/1.1")


def test_http10_request_without_host_is_accepted() -> None:
    head = parse_request_head(req(b"GET / HTTP/1.0", host=False))
    assert head.host is None and not head.is_11


def test_connection_tokens_are_lowercased_and_split() -> None:
    head = parse_request_head(req(b"GET / HTTP/1.1", b"Connection: Keep-Alive, X-Foo", b"Connection: ,te,"))
    assert head.connection_tokens == [b"keep-alive", b"x-foo", b"te"]


@pytest.mark.parametrize(
    "headers,upgrade",
    [
        ((b"Connection: Upgrade", b"Upgrade: websocket"), True),
        ((b"Connection: keep-alive, upgrade", b"Upgrade: WebSocket"), True),
        ((b"Connection: upgrade", b"Upgrade: foo/1, websocket"), True),
        ((b"Upgrade: websocket",), False),  # no Connection: upgrade → not an upgrade
        ((b"Connection: upgrade",), False),
        ((b"Connection: upgrade", b"Upgrade: h2c"), False),
        ((b"Connection: close", b"Upgrade: websocket"), False),
    ],
)
def test_request_upgrade_detection(headers, upgrade) -> None:
    assert parse_request_head(req(b"GET /ws HTTP/1.1", *headers)).upgrade is upgrade


@pytest.mark.parametrize(
    "headers,expect",
    [
        ((), False),
        ((b"Expect: 100-continue",), True),
        ((b"Expect: 100-Continue",), True),
        ((b"Expect: something",), False),
    ],
)
def test_expect_continue(headers, expect) -> None:
    assert parse_request_head(req(b"POST / HTTP/1.1", b"Content-Length: 3", *headers)).expect_continue is expect


# -------------------------------------------------------------------- responses

RESPONSE_ERRORS = [
    ("status-two-digits", resp(b"HTTP/1.1 20 OK")),
    ("status-four-digits", resp(b"HTTP/1.1 2000 OK")),
    ("status-letters", resp(b"HTTP/1.1 abc OK")),
    ("status-missing", resp(b"HTTP/1.1")),
    ("status-below-100", resp(b"HTTP/1.1 099 Odd")),
    ("status-000", resp(b"HTTP/1.1 000 Zero")),
    ("version-2", resp(b"HTTP/2.0 200 OK")),
    ("version-2-short", resp(b"HTTP/2 200 OK")),
    ("version-icy", resp(b"ICY 200 OK")),
    ("version-lowercase", resp(b"http/1.1 200 OK")),
    ("reason-nul", resp(b"HTTP/1.1 200 O\x00K")),
    ("reason-cr", resp(b"HTTP/1.1 200 O\rK")),
    ("reason-del", resp(b"HTTP/1.1 200 O\x7fK")),
    ("double-space", resp(b"HTTP/1.1  200 OK")),
    ("header-no-colon", resp(b"HTTP/1.1 200 OK", b"garbage")),
    ("header-obs-fold", resp(b"HTTP/1.1 200 OK", b"Foo: a", b"  b")),
    ("header-value-nul", resp(b"HTTP/1.1 200 OK", b"Foo: a\x00")),
    ("header-space-before-colon", resp(b"HTTP/1.1 200 OK", b"Foo : a")),
    ("cl-differing", resp(b"HTTP/1.1 200 OK", b"Content-Length: 1", b"Content-Length: 2")),
    ("cl-letters", resp(b"HTTP/1.1 200 OK", b"Content-Length: x")),
    ("te-chunked-twice", resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, chunked")),
]


@pytest.mark.parametrize("head", [r[1] for r in RESPONSE_ERRORS], ids=[r[0] for r in RESPONSE_ERRORS])
def test_response_head_errors_are_502(head: bytes) -> None:
    with pytest.raises(BadResponse) as info:
        parse_response_head(head)
    assert info.value.status == 502


def test_response_fields_and_raw_lines() -> None:
    head = parse_response_head(
        b"HTTP/1.1 404 Not  Found, really\r\n"
        b"Set-Cookie: a=1\r\n"
        b"set-cookie: b=2; Path=/\r\n"
        b"Content-Length: 7\r\n"
    )
    assert (head.version, head.status, head.reason) == (b"HTTP/1.1", 404, b"Not  Found, really")
    assert head.raw_status_line == b"HTTP/1.1 404 Not  Found, really"
    assert head.get_all(b"set-cookie") == [b"a=1", b"b=2; Path=/"]
    assert [raw for _, _, raw in head.headers] == [b"Set-Cookie: a=1", b"set-cookie: b=2; Path=/", b"Content-Length: 7"]
    assert head.content_length == 7 and not head.chunked and not head.transfer_encoding


@pytest.mark.parametrize(
    "line,reason", [(b"HTTP/1.1 200", b""), (b"HTTP/1.1 200 ", b""), (b"HTTP/1.0 599 \tx\x80", b"\tx\x80")]
)
def test_response_reason_may_be_empty_or_odd(line, reason) -> None:
    assert parse_response_head(resp(line)).reason == reason


@pytest.mark.parametrize(
    "headers,content_length,chunked,te",
    [
        ((), None, False, False),
        ((b"Content-Length: 0",), 0, False, False),
        ((b"Content-Length: 12, 12",), 12, False, False),
        ((b"Transfer-Encoding: chunked",), None, True, True),
        ((b"Transfer-Encoding: gzip, chunked",), None, True, True),
        ((b"Transfer-Encoding: gzip",), None, False, True),  # read until close (RFC 9112 §6.3)
        ((b"Transfer-Encoding: chunked, gzip",), None, False, True),
        # Both: Transfer-Encoding wins; the Content-Length is ignored (never trusted).
        ((b"Content-Length: 5", b"Transfer-Encoding: chunked"), None, True, True),
        ((b"Content-Length: nonsense", b"Transfer-Encoding: chunked"), None, True, True),
    ],
)
def test_response_body_framing(headers, content_length, chunked, te) -> None:
    head = parse_response_head(resp(b"HTTP/1.1 200 OK", *headers))
    assert (head.content_length, head.chunked, head.transfer_encoding) == (content_length, chunked, te)


@pytest.mark.parametrize(
    "version,connection,keep_alive",
    [
        (b"HTTP/1.1", None, True),
        (b"HTTP/1.1", b"close", False),
        (b"HTTP/1.0", None, False),
        (b"HTTP/1.0", b"keep-alive", True),
        (b"HTTP/1.0", b"Keep-Alive, close", False),
    ],
)
def test_response_keep_alive_rules(version, connection, keep_alive) -> None:
    headers = (b"Connection: " + connection,) if connection is not None else ()
    assert parse_response_head(resp(version + b" 200 OK", *headers)).keep_alive is keep_alive
