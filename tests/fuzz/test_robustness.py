"""Arbitrary and mutated input only ever raises our ``ProtocolError`` subclasses —
never another exception, never an endless loop (every drain is bounded by
``tests.unit.h1help.MAX_EVENTS_PER_DRAIN``).  Pure routing and header functions
are total."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cocalcproxy.http1 import (
    END,
    PAUSED,
    ProtocolError,
    RequestReader,
    ResponseReader,
    parse_request_head,
    parse_response_head,
)
from cocalcproxy.routing.allowlist import HostAllowlist
from cocalcproxy.routing.headers import Peer, request_head_bytes, response_head_bytes
from cocalcproxy.routing.project import ProjectRouting, route_project
from cocalcproxy.routing.types import Forward, Local, Named, Redirect, Reject
from tests.unit.h1help import drain

from .strategies import FUZZ, FUZZ_MULTI, requests, responses, split_points

#: Bytes that make parsers take interesting branches.
_INTERESTING = [b"\r\n", b"\r\n\r\n", b"\n", b"\r", b":", b" ", b"\t", b"\x00", b"0\r\n", b"chunked", b";", b"HTTP/1.1"]


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """``base`` with a few bytes replaced, inserted or deleted."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "splice"]))
        pos = draw(st.integers(0, len(data)))
        if op == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif op == "delete" and pos < len(data):
            del data[pos : pos + draw(st.integers(1, 4))]
        else:
            data[pos:pos] = draw(st.sampled_from(_INTERESTING))
    return bytes(data)


def feed_requests(chunks: list[bytes]) -> None:
    reader = RequestReader(max_head=2048, max_request_line=512, max_chunk_line=64)
    try:
        for chunk in chunks + [None]:
            if chunk is None:
                reader.receive_eof()
            else:
                reader.receive(chunk)
            for _ in range(100):
                got = drain(reader)
                if got[-1] is PAUSED and END in got:
                    reader.start_next()
                    continue
                break
    except ProtocolError as e:
        assert 400 <= e.status <= 599 and e.message


def feed_responses(chunks: list[bytes], head: bool, upgrade: bool, decode: bool) -> None:
    reader = ResponseReader(max_head=2048, max_chunk_line=64)
    reader.expect(head, upgrade, decode)
    try:
        for chunk in chunks + [None]:
            if chunk is None:
                reader.receive_eof()
            else:
                reader.receive(chunk)
            for _ in range(100):
                got = drain(reader)
                if got[-1] is PAUSED and END in got:
                    reader.expect(head, upgrade, decode)
                    continue
                break
    except ProtocolError as e:
        assert 400 <= e.status <= 599 and e.message


@FUZZ
@given(st.binary(max_size=400), st.data())
def test_arbitrary_bytes_into_request_reader(data: bytes, draw) -> None:
    feed_requests(draw.draw(split_points(data)))


@FUZZ_MULTI
@given(st.data())
def test_mutated_requests_into_request_reader(draw) -> None:
    msgs = draw.draw(st.lists(requests(), min_size=1, max_size=2))
    data = draw.draw(mutated(b"".join(m.data for m in msgs)))
    feed_requests(draw.draw(split_points(data)))


@FUZZ
@given(st.data(), st.booleans(), st.booleans(), st.booleans())
def test_mutated_and_arbitrary_responses_into_response_reader(draw, head: bool, upgrade: bool, decode: bool) -> None:
    if draw.draw(st.booleans()):
        data = draw.draw(st.binary(max_size=300))
    else:
        data = draw.draw(mutated(draw.draw(responses()).data))
    feed_responses(draw.draw(split_points(data)), head, upgrade, decode)


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_head_parsers_raise_only_protocol_errors(data: bytes, response: bool) -> None:
    head = data if data.endswith(b"\r\n") else data + b"\r\n"
    try:
        if response:
            parse_response_head(head)
        else:
            parse_request_head(head)
    except ProtocolError:
        pass


_ROUTING = ProjectRouting(base=b"/6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f/", servers=("lab",))
_ROUTE_TYPES = (Forward, Named, Redirect, Reject, Local)


@FUZZ
@given(st.binary(max_size=120) | st.builds(lambda b: _ROUTING.base + b, st.binary(max_size=80)))
def test_router_is_total(target: bytes) -> None:
    route = route_project(_ROUTING, target)
    assert isinstance(route, _ROUTE_TYPES)
    if isinstance(route, Reject):
        assert route.status in (400, 403, 404)


@FUZZ
@given(st.data())
def test_forwarding_is_total_for_any_parsed_head(draw) -> None:
    data = draw.draw(mutated(draw.draw(requests()).data))
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return
    try:
        req = parse_request_head(data[: head_end + 2])
    except ProtocolError:
        return
    peer = Peer(b"10.0.0.1", draw.draw(st.booleans()), b"http", b"80")
    out = request_head_bytes(req, b"/x", peer, draw.draw(st.sampled_from([None, b"/ctx"])))
    assert out.endswith(b"\r\n\r\n")
    parse_request_head(out[:-2])  # what we send is itself a valid head


@FUZZ
@given(st.data())
def test_response_forwarding_is_total_for_any_parsed_head(draw) -> None:
    data = draw.draw(mutated(draw.draw(responses(interim=False)).data))
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return
    try:
        resp = parse_response_head(data[: head_end + 2])
    except ProtocolError:
        return
    out = response_head_bytes(
        resp,
        keep_alive=draw.draw(st.booleans()),
        client_is_11=draw.draw(st.booleans()),
        reframe=draw.draw(st.booleans()),
        context_path=draw.draw(st.sampled_from([None, b"/ctx"])),
    )
    parse_response_head(out[:-2])


def test_allowlist_with_odd_hosts_denies_them_without_raising() -> None:
    allow = HostAllowlist(["*.example.org", "[::1]", "10.*"])
    for host in ("", "[", "]", "[]", "*", "a" * 300, "\x00", "[::1", "::1]"):
        assert allow.allows(host) is False, host
    for host in ("[::1]", "::1", "A.Example.ORG", "10.0.0.1"):  # the same list does allow what it names
        assert allow.allows(host) is True, host
