"""Helpers for driving the sans-IO readers in tests (h11's three-way style).

``run`` feeds chunks into a reader and drains events after each one; ``summary``
turns the event list into plain, comparable values (heads as tuples, adjacent
body spans merged, NEED_DATA dropped), so the same message fed whole, one byte
at a time, or split anywhere must give the same summary.
"""

from __future__ import annotations

from cocalcproxy.http1 import CLOSED, END, NEED_DATA, PAUSED, RequestHead, ResponseHead

#: No sane test needs more events per drain; a reader that loops forever fails here.
MAX_EVENTS_PER_DRAIN = 10_000


def drain(reader) -> list:
    """Pull events until the reader wants data, pauses or reports the peer closed."""
    out = []
    for _ in range(MAX_EVENTS_PER_DRAIN):
        ev = reader.next_event()
        out.append(ev)
        if ev is NEED_DATA or ev is PAUSED or ev is CLOSED:
            return out
    raise AssertionError(f"reader produced {MAX_EVENTS_PER_DRAIN} events without stopping: {out[-5:]!r}")


def run(reader, chunks, eof: bool = False, pipeline: bool = False) -> list:
    """Feed ``chunks`` one after the other, draining after each; then EOF if asked.

    With ``pipeline``, every PAUSED that follows an END is answered with
    ``start_next()`` (as the front does once the response is finished), so all
    pipelined requests in the input are read.
    """
    events: list = []

    def pull() -> None:
        for _ in range(MAX_EVENTS_PER_DRAIN):
            got = drain(reader)
            events.extend(got)
            if pipeline and got[-1] is PAUSED and _after_end(events):
                reader.start_next()
                continue
            return
        raise AssertionError("pipeline never drained")

    for chunk in chunks:
        reader.receive(chunk)
        pull()
    if eof:
        reader.receive_eof()
        pull()
    return events


def _after_end(events: list) -> bool:
    for ev in reversed(events):
        if ev is PAUSED or ev is NEED_DATA:
            continue
        return ev is END
    return False


def head_summary(head) -> tuple:
    if isinstance(head, RequestHead):
        return (
            "request",
            head.method,
            head.target,
            head.version,
            tuple(head.headers),
            head.content_length,
            head.chunked,
            head.keep_alive,
            head.upgrade,
            head.expect_continue,
            head.host,
        )
    assert isinstance(head, ResponseHead), head
    return (
        "response",
        head.version,
        head.status,
        head.reason,
        tuple(head.headers),
        head.content_length,
        head.chunked,
        head.transfer_encoding,
        head.keep_alive,
    )


def summary(events: list) -> list:
    """Heads as tuples, body spans merged, NEED_DATA dropped, repeated PAUSED collapsed."""
    out: list = []
    for ev in events:
        if ev is NEED_DATA:
            continue
        if isinstance(ev, bytes):
            if not ev:
                continue
            if out and isinstance(out[-1], bytes):
                out[-1] += ev
            else:
                out.append(ev)
            continue
        if ev is PAUSED and out and out[-1] is PAUSED:
            continue
        out.append(head_summary(ev) if isinstance(ev, (RequestHead, ResponseHead)) else ev)
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def body_of(events: list) -> bytes:
    return b"".join(ev for ev in events if isinstance(ev, bytes))


def heads_of(events: list) -> list:
    return [ev for ev in events if isinstance(ev, (RequestHead, ResponseHead))]
