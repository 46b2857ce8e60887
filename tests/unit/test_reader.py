"""Request/ResponseReader event streams (cocalcproxy/http1/reader.py).

Every scenario is fed three ways (h11's style): the whole input at once, one byte
at a time, and followed by bytes of a next message that must stay unconsumed.
Body spans are the raw bytes to forward (chunk framing included), so after
merging spans the body event must equal the body bytes on the wire.
"""

from __future__ import annotations

import pytest

from cocalcproxy.http1 import (
    CLOSED,
    END,
    NEED_DATA,
    PAUSED,
    BadRequest,
    BadResponse,
    HeadTooLarge,
    IncompleteMessage,
    ProtocolError,
    RequestReader,
    ResponseReader,
    State,
    UriTooLong,
)

from .h1help import body_of, bytewise, drain, heads_of, run, summary

NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


def request_three_ways(data: bytes, **kw):
    """Yield (style, reader, events, expected leftover) for a request stream."""
    for style, chunks, tail in (
        ("whole", [data], b""),
        ("bytewise", bytewise(data), b""),
        ("trailing", [data + NEXT_REQUEST], NEXT_REQUEST),
    ):
        reader = RequestReader(**kw)
        yield style, reader, run(reader, chunks), tail


def response_three_ways(data: bytes, head_request=False, upgrade_request=False, decode=False, trailing=True):
    styles = [("whole", [data], b""), ("bytewise", bytewise(data), b"")]
    if trailing:
        extra = b"HTTP/1.1 200 OK\r\n\r\n"
        styles.append(("trailing", [data + extra], extra))
    for style, chunks, tail in styles:
        reader = ResponseReader()
        reader.expect(head_request, upgrade_request, decode)
        yield style, reader, run(reader, chunks), tail


def assert_same_in_all_styles(results) -> list:
    """All styles give the same event summary; return it."""
    first = None
    for style, reader, events, tail in results:
        got = summary(events)
        if first is None:
            first = got
        assert got == first, style
        assert reader.buf == tail, style
    return first


# --------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    "data,body",
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b""),
        (b"GET / HTTP/1.0\r\n\r\n", b""),
        (b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", b""),
        (b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", b"hello world"),
        (b"POST /up HTTP/1.0\r\nContent-Length: 3\r\n\r\n\r\n\r", b"\r\n\r"),
        (
            b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        ),
        (b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"0\r\n\r\n"),
    ],
    ids=["get", "get-http10", "cl-zero", "cl-body", "cl-body-crlf-bytes", "chunked-ext-trailers", "chunked-empty"],
)
def test_request_streams(data: bytes, body: bytes) -> None:
    got = assert_same_in_all_styles(request_three_ways(data))
    head_end = data.index(b"\r\n\r\n") + 4
    assert data[head_end:] == body
    expected_tail = ([body] if body else []) + [END, PAUSED]
    assert got[1:] == expected_tail
    assert got[0][0] == "request"


def test_request_head_event_comes_only_when_head_is_complete() -> None:
    data = b"GET /x HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n"
    reader = RequestReader()
    for i, byte in enumerate(data[:-1]):
        reader.receive(bytes([byte]))
        assert drain(reader) == [NEED_DATA], i
    reader.receive(data[-1:])
    events = drain(reader)
    assert [type(e).__name__ for e in events] == ["RequestHead", "Event", "Event"]
    assert events[1:] == [END, PAUSED]


def test_body_spans_are_raw_and_streamed() -> None:
    """A large chunked body is forwarded as it arrives, framing included, never buffered whole."""
    reader = RequestReader()
    reader.receive(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert heads_of(drain(reader))
    reader.receive(b"4000\r\n" + b"x" * 100)
    assert drain(reader) == [b"4000\r\n" + b"x" * 100, NEED_DATA]
    reader.receive(b"y" * 0x3F9C)
    assert drain(reader) == [b"y" * 0x3F9C, NEED_DATA]
    assert reader.buffered == 0
    reader.receive(b"\r\n0\r\n\r\n")
    assert drain(reader) == [b"\r\n0\r\n\r\n", END, PAUSED]


def test_pipelined_requests_wait_for_start_next() -> None:
    first = b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
    second = b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
    third = b"GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    reader = RequestReader()
    reader.receive(first + second)
    events = drain(reader)
    assert [e.target for e in heads_of(events)] == [b"/1"]
    assert events[1:] == [b"hi", END, PAUSED]
    # The next request stays buffered, however much more arrives, until start_next().
    reader.receive(third)
    assert drain(reader) == [PAUSED]
    assert drain(reader) == [PAUSED]
    assert reader.buf == second + third
    reader.start_next()
    events = drain(reader)
    assert [e.target for e in heads_of(events)] == [b"/2"] and events[1:] == [END, PAUSED]
    reader.start_next()
    events = drain(reader)
    assert heads_of(events)[0].keep_alive is False and events[1:] == [END, PAUSED]
    reader.start_next()
    assert drain(reader) == [NEED_DATA]


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_pipeline_of_mixed_framings(split: str) -> None:
    requests = [
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        b"GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ]
    data = b"".join(requests)
    reader = RequestReader()
    events = run(reader, [data] if split == "whole" else bytewise(data), eof=True, pipeline=True)
    got = summary(events)
    assert [h[2] for h in got if isinstance(h, tuple)] == [b"/a", b"/b", b"/c", b"/d"]
    assert [e for e in got if isinstance(e, bytes)] == [b"abc", b"1\r\nx\r\n0\r\n\r\n"]
    assert got[-1] is CLOSED
    assert got.count(END) == 4


@pytest.mark.parametrize(
    "data",
    [
        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    ids=["one-crlf", "two-crlf"],
)
def test_empty_lines_before_a_request_are_ignored(data: bytes) -> None:
    """RFC 9112 §2.2 (some clients send a CRLF after a POST body), in every split."""
    got = assert_same_in_all_styles(request_three_ways(data))
    assert got[0][2] == b"/" and got[1:] == [END, PAUSED]


def test_empty_line_split_inside_its_crlf() -> None:
    events = run(RequestReader(), [b"\r\n\r", b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"])
    assert [h.target for h in heads_of(events)] == [b"/"]


def test_crlf_between_pipelined_requests_is_ignored() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
    for chunks in ([data], bytewise(data)):
        events = run(RequestReader(), chunks, pipeline=True)
        assert [h.target for h in heads_of(events)] == [b"/", b"/2"]


def test_eof_between_requests_is_closed() -> None:
    reader = RequestReader()
    reader.receive(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert drain(reader)[-2:] == [END, PAUSED]
    reader.receive_eof()
    assert drain(reader) == [PAUSED]  # the current request is not done being answered
    reader.start_next()
    assert drain(reader) == [CLOSED]
    assert reader.state is State.CLOSED
    assert drain(reader) == [PAUSED]


def test_eof_on_fresh_connection_is_closed() -> None:
    reader = RequestReader()
    reader.receive_eof()
    assert drain(reader) == [CLOSED]


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"G",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=["mid-head", "one-byte", "mid-cl-body", "mid-chunked-body", "before-chunked-body"],
)
def test_eof_in_the_middle_of_a_request_is_400(data: bytes) -> None:
    for chunks in ([data], bytewise(data)):
        reader = RequestReader()
        with pytest.raises(IncompleteMessage) as info:
            run(reader, chunks, eof=True)
        assert info.value.status == 400


REQUEST_STREAM_ERRORS = [
    ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", BadRequest, 400),
    ("bare-lf-head", b"GET / HTTP/1.1\nHost: a\n\n", BadRequest, 400),
    ("lf-crlf-head", b"GET / HTTP/1.1\r\nHost: a\n\r\n", BadRequest, 400),
    ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ProtocolError, 505),
    (
        "cl-te",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        BadRequest,
        400,
    ),
    ("gzip-chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ProtocolError, 501),
    ("bad-chunk-size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", BadRequest, 400),
    ("chunk-no-crlf", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", BadRequest, 400),
    (
        "chunk-line-4097",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 4095 + b"\r\nx\r\n0\r\n\r\n",
        BadRequest,
        400,
    ),
]


@pytest.mark.parametrize(
    "data,cls,status", [e[1:] for e in REQUEST_STREAM_ERRORS], ids=[e[0] for e in REQUEST_STREAM_ERRORS]
)
def test_request_stream_errors(data: bytes, cls, status: int) -> None:
    for chunks in ([data], bytewise(data)):
        with pytest.raises(cls) as info:
            run(RequestReader(), chunks)
        assert info.value.status == status


def test_chunk_line_of_4096_is_accepted_through_the_reader() -> None:
    body = b"1;" + b"e" * 4094 + b"\r\nx\r\n0\r\n\r\n"
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    got = assert_same_in_all_styles(request_three_ways(data))
    assert got[1:] == [body, END, PAUSED]


def test_non_token_first_byte_fails_without_waiting_for_a_line_end() -> None:
    reader = RequestReader()
    reader.receive(b"\x16")
    with pytest.raises(BadRequest):
        drain(reader)


# ------------------------------------------------------------ request limits


def _line(length: int) -> bytes:
    line = b"GET /" + b"a" * (length - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == length
    return line


@pytest.mark.parametrize("style", ["whole", "bytewise", "trailing"])
def test_request_line_of_8192_is_accepted(style: str) -> None:
    data = _line(8192) + b"\r\nHost: a\r\n\r\n"
    chunks = {"whole": [data], "bytewise": bytewise(data), "trailing": [data + NEXT_REQUEST]}[style]
    events = run(RequestReader(), chunks)
    assert len(heads_of(events)[0].target) == 8192 - len(b"GET  HTTP/1.1")


@pytest.mark.parametrize("complete", [True, False], ids=["complete-head", "no-line-end-yet"])
@pytest.mark.parametrize("style", ["whole", "bytewise"])
def test_request_line_over_8192_is_414(style: str, complete: bool) -> None:
    data = _line(8193) + (b"\r\nHost: a\r\n\r\n" if complete else b"")
    chunks = [data] if style == "whole" else bytewise(data)
    with pytest.raises(UriTooLong) as info:
        run(RequestReader(), chunks)
    assert info.value.status == 414


def test_long_line_without_crlf_is_414_as_soon_as_it_is_too_long() -> None:
    reader = RequestReader()
    reader.receive(b"GET /" + b"a" * 8300)
    with pytest.raises(UriTooLong):
        drain(reader)


def _head_of_size(size: int) -> bytes:
    """A complete request head (final CRLFCRLF included) of exactly ``size`` bytes."""
    start = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: "
    pad = size - len(start) - 4
    return start + b"p" * pad + b"\r\n\r\n"


@pytest.mark.parametrize("style", ["whole", "bytewise", "trailing"])
def test_head_at_the_limit_is_accepted(style: str) -> None:
    data = _head_of_size(1000)
    chunks = {"whole": [data], "bytewise": bytewise(data), "trailing": [data + NEXT_REQUEST]}[style]
    events = run(RequestReader(max_head=1000), chunks)
    assert len(heads_of(events)) == 1


@pytest.mark.parametrize("complete", [True, False], ids=["complete-head", "incomplete-head"])
@pytest.mark.parametrize("style", ["whole", "bytewise"])
def test_head_over_the_limit_is_431(style: str, complete: bool) -> None:
    data = _head_of_size(1001)
    if not complete:
        data = data[:-4] + b"more"
    chunks = [data] if style == "whole" else bytewise(data)
    with pytest.raises(HeadTooLarge) as info:
        run(RequestReader(max_head=1000), chunks)
    assert info.value.status == 431


@pytest.mark.parametrize("style", ["whole", "bytewise"])
def test_request_line_limit_is_checked_before_the_head_limit(style: str) -> None:
    data = _line(9000) + b"\r\nHost: a\r\n\r\n"
    chunks = [data] if style == "whole" else bytewise(data)
    with pytest.raises(UriTooLong):
        run(RequestReader(max_head=4096), chunks)


@pytest.mark.parametrize("style", ["whole", "bytewise"])
def test_head_limit_smaller_than_line_limit_gives_431_for_a_long_line(style: str) -> None:
    """--max-header-bytes 4096: a 5000-byte request line is within 8 KiB, so 431, not 414."""
    data = _line(5000) + b"\r\nHost: a\r\n\r\n"
    with pytest.raises(HeadTooLarge):
        run(RequestReader(max_head=4096), [data] if style == "whole" else bytewise(data))


def test_default_limits_match_limits_module() -> None:
    from cocalcproxy import limits

    reader = RequestReader()
    assert (reader.max_head, reader.max_request_line, reader.max_chunk_line) == (
        limits.MAX_HEADER_BYTES,
        limits.MAX_REQUEST_LINE,
        limits.MAX_CHUNK_LINE,
    )


# -------------------------------------------------------------------- responses

RESPONSE_STREAMS = [
    # id, data, head_request, body as raw spans (None: until close, tested separately)
    ("cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", False, b"hello"),
    ("cl-zero", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False, b""),
    (
        "chunked-trailers",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nEtag: x\r\n\r\n",
        False,
        b"3;x=y\r\nabc\r\n0\r\nEtag: x\r\n\r\n",
    ),
    (
        "chunked-and-cl",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
        False,
        b"1\r\na\r\n0\r\n\r\n",
    ),
    ("head-with-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", True, b""),
    ("head-with-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", True, b""),
    ("head-no-framing", b"HTTP/1.1 200 OK\r\n\r\n", True, b""),
    ("204", b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", False, b""),
    ("204-no-framing", b"HTTP/1.1 204 No Content\r\n\r\n", False, b""),
    ("304", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: x\r\n\r\n", False, b""),
    ("304-chunked", b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", False, b""),
    ("http10-cl", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False, b"ok"),
]


@pytest.mark.parametrize(
    "data,head_request,body", [r[1:] for r in RESPONSE_STREAMS], ids=[r[0] for r in RESPONSE_STREAMS]
)
def test_response_streams(data: bytes, head_request: bool, body: bytes) -> None:
    got = assert_same_in_all_styles(response_three_ways(data, head_request=head_request))
    assert got[0][0] == "response"
    assert got[1:] == ([body] if body else []) + [END, PAUSED]


@pytest.mark.parametrize(
    "data,body",
    [
        (
            b"HTTP/1.1 200 OK\r\n\r\nuntil the end\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"until the end\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        ),
        (b"HTTP/1.0 200 OK\r\n\r\nold", b"old"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b", b"\x1f\x8b"),
        (b"HTTP/1.1 200 OK\r\n\r\n", b""),
    ],
    ids=["no-framing", "http10", "te-not-chunked", "empty"],
)
def test_close_delimited_response_ends_at_eof(data: bytes, body: bytes) -> None:
    for chunks in ([data], bytewise(data)):
        reader = ResponseReader()
        reader.expect(False, False)
        events = run(reader, chunks)
        assert END not in events  # not before EOF
        assert reader.state is State.BODY_UNTIL_CLOSE
        events += run(reader, [], eof=True)
        got = summary(events)
        assert got[1:] == ([body] if body else []) + [END, PAUSED]


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
    ],
    ids=["100", "103", "100-102"],
)
def test_interim_responses_then_final(interim: bytes) -> None:
    data = interim + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    got = assert_same_in_all_styles(response_three_ways(data))
    statuses = [h[2] for h in got if isinstance(h, tuple)]
    assert statuses[-1] == 200 and all(100 <= s < 200 for s in statuses[:-1])
    assert len(statuses) == interim.count(b"HTTP/1.1") + 1
    assert got[-3:] == [b"ok", END, PAUSED]


@pytest.mark.parametrize("style", ["whole", "bytewise"])
def test_101_to_upgrade_becomes_tunnel_with_trailing_bytes(style: str) -> None:
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    frames = b"\x81\x05hello\x82\x00HTTP/1.1 200 OK\r\n\r\n"
    data = head + frames
    reader = ResponseReader()
    reader.expect(False, True)
    events = run(reader, [data] if style == "whole" else bytewise(data))
    assert [h.status for h in heads_of(events)] == [101]
    assert body_of(events) == b""  # nothing after a 101 is parsed as HTTP
    assert END not in events
    assert reader.state is State.TUNNEL
    assert reader.trailing() == frames
    assert reader.trailing() == b""


def test_100_before_101_keeps_waiting_for_the_switch() -> None:
    reader = ResponseReader()
    reader.expect(False, True)
    events = run(reader, [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching\r\n\r\nraw"])
    assert [h.status for h in heads_of(events)] == [100, 101]
    assert reader.trailing() == b"raw"


def test_101_without_upgrade_request_is_502() -> None:
    reader = ResponseReader()
    reader.expect(False, False)
    with pytest.raises(BadResponse) as info:
        run(reader, [b"HTTP/1.1 101 Switching Protocols\r\n\r\n"])
    assert info.value.status == 502


def test_non_101_answer_to_upgrade_is_an_ordinary_response() -> None:
    reader = ResponseReader()
    reader.expect(False, True)
    events = run(reader, [b"HTTP/1.1 400 Bad\r\nContent-Length: 3\r\n\r\nno!"])
    assert summary(events)[1:] == [b"no!", END, PAUSED]


@pytest.mark.parametrize("style", ["whole", "bytewise"])
def test_decode_mode_hands_back_payload_only(style: str) -> None:
    """For an HTTP/1.0 client, a chunked response is decoded: no sizes, no trailers."""
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n6\r\n world\r\n0\r\nX: y\r\n\r\n"
    reader = ResponseReader()
    reader.expect(False, False, decode_chunked=True)
    events = run(reader, [data] if style == "whole" else bytewise(data))
    assert body_of(events) == b"hello world"
    assert summary(events)[-2:] == [END, PAUSED]


def test_decode_mode_leaves_content_length_bodies_alone() -> None:
    reader = ResponseReader()
    reader.expect(False, False, decode_chunked=True)
    events = run(reader, [b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n1\r\na\r\n"])
    assert body_of(events) == b"1\r\na\r\n"


def test_response_reader_is_reused_for_the_next_exchange() -> None:
    """A pooled backend connection: expect() before each response."""
    reader = ResponseReader()
    reader.expect(False, False)
    events = run(reader, [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"])
    assert summary(events)[-3:] == [b"a", END, PAUSED]
    reader.expect(True, False)
    events = run(reader, [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"])
    assert summary(events)[-2:] == [END, PAUSED]
    reader.expect(False, False)
    events = run(reader, [b"HTTP/1.1 204 No Content\r\n\r\n"])
    assert summary(events)[-2:] == [END, PAUSED]


def test_bytes_after_a_complete_response_stay_buffered() -> None:
    reader = ResponseReader()
    reader.expect(False, False)
    run(reader, [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naEXTRA"])
    assert reader.buffered == len(b"EXTRA")
    assert drain(reader) == [PAUSED]


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-",
    ],
    ids=["mid-cl", "mid-chunk", "before-chunks", "mid-head"],
)
def test_eof_in_the_middle_of_a_response_is_502(data: bytes) -> None:
    for chunks in ([data], bytewise(data)):
        reader = ResponseReader()
        reader.expect(False, False)
        with pytest.raises(IncompleteMessage) as info:
            run(reader, chunks, eof=True)
        assert info.value.status == 502


def test_eof_before_any_response_is_closed() -> None:
    reader = ResponseReader()
    reader.expect(False, False)
    reader.receive_eof()
    assert drain(reader) == [CLOSED]


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxx\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 099 Odd\r\n\r\n",
    ],
    ids=["bare-lf", "garbage", "bad-chunk", "differing-cl", "status-below-100"],
)
def test_bad_responses_are_502(data: bytes) -> None:
    for chunks in ([data], bytewise(data)):
        reader = ResponseReader()
        reader.expect(False, False)
        with pytest.raises(BadResponse) as info:
            run(reader, chunks)
        assert info.value.status == 502


def test_response_head_limit_is_502() -> None:
    reader = ResponseReader(max_head=100)
    reader.expect(False, False)
    with pytest.raises(BadResponse):
        run(reader, [b"HTTP/1.1 200 OK\r\nX: " + b"v" * 200])
