"""Differential oracle: for generated valid requests and responses, our readers agree
with h11 (a test-only dependency) on method, target, version, status, reason,
headers, the decoded body and keep-alive.

Known, deliberate differences are excluded from the generators, not papered over
here: h11 rejects bytes >= 0x80 in a request-target (we forward them, SPEC §3)
and never keeps an HTTP/1.0 connection alive (we honour ``Connection: keep-alive``).
"""

from __future__ import annotations

import h11
from hypothesis import given
from hypothesis import strategies as st

from cocalcproxy.http1 import END, PAUSED, RequestHead, RequestReader, ResponseHead, ResponseReader
from cocalcproxy.http1.body import ChunkedReader
from tests.unit.h1help import drain, heads_of

from .strategies import FUZZ, Message, requests, responses


def h11_events(conn: h11.Connection, data: bytes, eof: bool) -> list:
    conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    out = []
    for _ in range(10_000):
        ev = conn.next_event()
        if ev is h11.NEED_DATA or ev is h11.PAUSED:
            return out
        out.append(ev)
        if type(ev) in (h11.EndOfMessage, h11.ConnectionClosed):
            return out
    raise AssertionError("h11 did not stop")


def h11_body(events: list) -> bytes:
    return b"".join(bytes(ev.data) for ev in events if type(ev) is h11.Data)


def decode_chunked(raw: bytes) -> bytes:
    reader = ChunkedReader(decode=True)
    assert reader.feed(raw, 0) == len(raw) and reader.done
    return b"".join(reader.take_payload())


def our_request(data: bytes) -> tuple[RequestHead, bytes]:
    reader = RequestReader()
    reader.receive(data)
    events = drain(reader)
    assert events[-2:] == [END, PAUSED], events
    head = heads_of(events)[0]
    raw = b"".join(ev for ev in events if isinstance(ev, bytes))
    return head, raw


#: h11 also rejects optional whitespace before a chunk extension's ";" (RFC 9112 allows BWS there).
ascii_requests = requests().filter(
    lambda m: all(0x21 <= b < 0x7F for b in m.extra["target"]) and b" ;" not in m.body_raw
)


@FUZZ
@given(ascii_requests)
def test_requests_agree_with_h11(msg: Message) -> None:
    ours, raw_body = our_request(msg.data)
    conn = h11.Connection(h11.SERVER)
    theirs = h11_events(conn, msg.data, eof=False)
    request = theirs[0]
    assert type(request) is h11.Request
    assert ours.method == request.method
    assert ours.target == request.target
    assert ours.version == b"HTTP/" + request.http_version
    assert [(name, value) for name, value, _ in ours.headers] == list(request.headers)
    assert [raw.split(b":", 1)[0] for _, _, raw in ours.headers] == [name for name, _ in request.headers.raw_items()]
    assert type(theirs[-1]) is h11.EndOfMessage
    body = decode_chunked(raw_body) if ours.chunked else raw_body
    assert body == h11_body(theirs) == msg.payload
    # Framing decisions: h11 frames by chunked / Content-Length / nothing, as we do.
    assert ours.chunked == (msg.framing == "chunked")
    assert ours.content_length == (len(msg.payload) if msg.framing == "length" else None)
    h11_keep_alive = conn.their_state is h11.DONE
    if ours.is_11:
        assert ours.keep_alive == h11_keep_alive
    else:
        assert not h11_keep_alive  # h11 never keeps HTTP/1.0 alive
        assert ours.keep_alive == (b"keep-alive" in ours.connection_tokens and b"close" not in ours.connection_tokens)


def our_response(data: bytes, head_request: bool, eof: bool) -> tuple[list[ResponseHead], bytes, bool]:
    reader = ResponseReader()
    reader.expect(head_request, False, decode_chunked=True)
    reader.receive(data)
    events = drain(reader)
    if eof:
        reader.receive_eof()
        events += drain(reader)
    body = b"".join(ev for ev in events if isinstance(ev, bytes))
    return heads_of(events), body, END in events


@FUZZ
@given(st.data())
def test_responses_agree_with_h11(data) -> None:
    head_request = data.draw(st.booleans())
    msg = data.draw(responses(head_request=head_request).filter(lambda m: b" ;" not in m.body_raw))
    eof = msg.framing == "close"
    heads, body, ended = our_response(msg.data, head_request, eof)

    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=b"HEAD" if head_request else b"GET", target=b"/", headers=[(b"Host", b"x")]))
    conn.send(h11.EndOfMessage())
    theirs = h11_events(conn, msg.data, eof=eof)
    their_heads = [ev for ev in theirs if type(ev) in (h11.InformationalResponse, h11.Response)]

    assert ended and type(theirs[-1]) is h11.EndOfMessage
    assert [h.status for h in heads] == [h.status_code for h in their_heads]
    final, their_final = heads[-1], their_heads[-1]
    assert final.reason == their_final.reason
    assert final.version == b"HTTP/" + their_final.http_version
    assert [(name, value) for name, value, _ in final.headers] == list(their_final.headers)
    assert body == h11_body(theirs) == msg.payload
    h11_keep_alive = conn.their_state is h11.DONE
    if final.version == b"HTTP/1.1":
        assert final.keep_alive == h11_keep_alive  # what the head says (EOF framing is the reader's business)
    else:
        assert not h11_keep_alive
