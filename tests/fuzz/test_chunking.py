"""Chunking invariance: the same bytes split at arbitrary points give the same events
(after merging body spans), for requests, pipelines and responses — and the
events say what the generator built."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cocalcproxy.http1 import CLOSED, END, PAUSED, ProtocolError, RequestReader, ResponseReader
from tests.unit.h1help import drain, summary

from .strategies import FUZZ_MULTI, Message, requests, responses, split_points


def read_requests(chunks: list[bytes], **limits) -> list:
    reader = RequestReader(**limits)
    events: list = []

    def pull():
        while True:
            got = drain(reader)
            events.extend(got)
            if got[-1] is PAUSED and END in got:
                reader.start_next()
                continue
            return

    for chunk in chunks:
        reader.receive(chunk)
        pull()
    reader.receive_eof()
    pull()
    return events


def read_responses(chunks: list[bytes], heads: list[bool], decode: bool = False) -> list:
    """Read a series of responses to requests with the given HEAD flags (EOF at the end)."""
    reader = ResponseReader()
    pending = list(heads)
    reader.expect(pending.pop(0), False, decode)
    events: list = []

    def pull():
        while True:
            got = drain(reader)
            events.extend(got)
            if got[-1] is PAUSED and END in got and pending:
                reader.expect(pending.pop(0), False, decode)
                continue
            return

    for chunk in chunks:
        reader.receive(chunk)
        pull()
    reader.receive_eof()
    pull()
    return events


def expected_request_events(msgs: list[Message]) -> list:
    out: list = []
    for m in msgs:
        out.append(("head", m.extra["target"]))
        if m.body_raw:
            out.append(m.body_raw)
        out.append(END)
    out.append(CLOSED)
    return out


def shape(events: list) -> list:
    """Summary with heads reduced to the target / status (what the generator knows)."""
    out = []
    for ev in summary(events):
        if isinstance(ev, tuple):
            out.append(("head", ev[2]) if ev[0] == "request" else ("status", ev[2]))
        elif ev is not PAUSED:
            out.append(ev)
    return out


@FUZZ_MULTI
@given(st.lists(requests(), min_size=1, max_size=3), st.data())
def test_request_pipeline_split_anywhere(msgs: list[Message], data) -> None:
    stream = b"".join(m.data for m in msgs)
    whole = read_requests([stream])
    split = read_requests(data.draw(split_points(stream)))
    assert summary(split) == summary(whole)
    assert shape(whole) == expected_request_events(msgs)
    heads = [ev for ev in summary(whole) if isinstance(ev, tuple)]
    assert [h[7] for h in heads] == [m.keep_alive for m in msgs]


@FUZZ_MULTI
@given(st.data())
def test_response_series_split_anywhere(data) -> None:
    n = data.draw(st.integers(1, 3))
    heads = [data.draw(st.booleans()) for _ in range(n)]
    msgs = [data.draw(responses(head_request=h, allow_close=(i == n - 1))) for i, h in enumerate(heads)]
    stream = b"".join(m.data for m in msgs)
    decode = data.draw(st.booleans())
    whole = read_responses([stream], heads, decode)
    split = read_responses(data.draw(split_points(stream)), heads, decode)
    assert summary(split) == summary(whole)
    expected: list = []
    for m in msgs:
        if m.extra["interim"]:
            expected.append(("status", 100))
        expected.append(("status", m.extra["status"]))
        body = m.payload if decode else m.body_raw
        if body:
            expected.append(body)
        expected.append(END)
    got = shape(whole)
    if got and got[-1] is CLOSED:
        got.pop()  # the EOF after the last, self-delimited response
    assert got == expected


_LIMITS = [
    {},
    {"max_head": 200, "max_request_line": 60, "max_chunk_line": 8},
    {"max_head": 60, "max_request_line": 200},
]


@FUZZ_MULTI
@given(
    st.lists(requests(), min_size=1, max_size=3),
    st.sampled_from([b"", b"\r\n", b"\n", b"\r"]),
    st.binary(max_size=200),
    st.sampled_from(_LIMITS),
    st.data(),
)
def test_requests_followed_by_garbage_split_anywhere(
    msgs: list[Message], between: bytes, garbage: bytes, limits, data
) -> None:
    """Whatever surrounds valid requests, whether it is accepted (and with which
    events) does not depend on how the bytes arrive.  (When the input breaks two
    rules at once, which status is reported may depend on what was seen first.)"""
    stream = between.join(m.data for m in msgs) + garbage

    def outcome(chunks):
        try:
            return ("ok", summary(read_requests(chunks, **limits)))
        except ProtocolError:
            return ("error",)

    whole = outcome([stream])
    split = outcome(data.draw(split_points(stream)))
    assert split == whole
