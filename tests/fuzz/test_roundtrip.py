"""Round trips through the forwarding layer: a forwarded head differs from what the
client sent only where SPEC §3 says it may (request line target, hop-by-hop and
X-Forwarded-* headers); everything else is the client's raw lines, in order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cocalcproxy.http1 import parse_request_head, parse_response_head
from cocalcproxy.routing.headers import Peer, request_head_bytes, response_head_bytes

from .strategies import FUZZ, Message, header_values, requests, responses, targets

HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
peers = st.builds(
    Peer,
    st.sampled_from([b"", b"127.0.0.1", b"2001:db8::1"]),
    st.booleans(),
    st.sampled_from([b"http", b"https"]),
    st.sampled_from([b"", b"80", b"8443"]),
)
contexts = st.sampled_from([None, b"/pid/server/8000", b"/python-http"])


def head_bytes(msg: Message) -> bytes:
    return msg.data[: msg.data.index(b"\r\n\r\n") + 2]


@st.composite
def requests_with_xf(draw) -> Message:
    """Requests that sometimes carry X-Forwarded-* / context headers of their own."""
    msg = draw(requests())
    names = [b"X-Forwarded-For", b"X-Forwarded-Proto", b"X-Forwarded-Host", b"X-Forwarded-Port", b"X-Forwarded-Prefix"]
    names += [b"X-ProxyContextPath", b"x-forwarded-context"]
    extra = [n + b": " + draw(header_values()) for n in draw(st.lists(st.sampled_from(names), max_size=4))]
    if not extra:
        return msg
    head, _, body = msg.data.partition(b"\r\n\r\n")
    data = head + b"\r\n" + b"\r\n".join(extra) + b"\r\n\r\n" + body
    return Message(
        data, msg.start_line, msg.headers + extra, msg.payload, msg.body_raw, msg.framing, msg.keep_alive, msg.extra
    )


def forwarded_lines(req, target, peer, context) -> list[bytes]:
    out = request_head_bytes(req, target, peer, context)
    assert out.endswith(b"\r\n\r\n")
    return out[:-4].split(b"\r\n")


@FUZZ
@given(requests_with_xf(), targets, targets, peers, contexts)
def test_only_the_request_line_depends_on_the_target(msg: Message, t1: bytes, t2: bytes, peer: Peer, ctx) -> None:
    req = parse_request_head(head_bytes(msg))
    a = forwarded_lines(req, t1, peer, ctx)
    b = forwarded_lines(req, t2, peer, ctx)
    assert a[1:] == b[1:]
    assert a[0] == msg.extra["method"] + b" " + t1 + b" " + msg.extra["version"]
    assert b[0] == msg.extra["method"] + b" " + t2 + b" " + msg.extra["version"]


def expected_kept(req, peer: Peer, ctx) -> list[bytes]:
    """The client's lines a correct proxy keeps, computed from SPEC §3 directly."""
    named = set(req.connection_tokens) - {
        b"close",
        b"keep-alive",
        b"upgrade",
        b"content-length",
        b"transfer-encoding",
        b"host",
    }
    kept = []
    for lname, _, raw in req.headers:
        if lname in HOP and not (req.upgrade and lname == b"upgrade"):
            continue
        if lname in named:
            continue
        is_xf = lname.startswith(b"x-forwarded-") or lname == b"x-proxycontextpath"
        if is_xf and not peer.trusted:
            continue
        if ctx is not None and lname in (b"x-forwarded-context", b"x-proxycontextpath", b"x-forwarded-prefix"):
            continue
        kept.append(raw)
    return kept


@FUZZ
@given(requests_with_xf(), targets, peers, contexts)
def test_kept_lines_are_raw_and_in_order_then_ours(msg: Message, target: bytes, peer: Peer, ctx) -> None:
    req = parse_request_head(head_bytes(msg))
    lines = forwarded_lines(req, target, peer, ctx)
    kept = expected_kept(req, peer, ctx)
    xff_index = next((i for i, raw in enumerate(kept) if raw.lower().startswith(b"x-forwarded-for:")), None)
    if peer.address and xff_index is not None:
        # the peer is appended to the last X-Forwarded-For line of a trusted chain
        last = max(i for i, raw in enumerate(kept) if raw.lower().startswith(b"x-forwarded-for:"))
        kept[last] = kept[last].rstrip(b" \t") + b", " + peer.address
    assert lines[1 : 1 + len(kept)] == kept
    added = lines[1 + len(kept) :]
    assert all(
        line.split(b":")[0].lower().startswith((b"x-forwarded-", b"x-proxycontextpath", b"connection"))
        for line in added
    )


@FUZZ
@given(requests_with_xf(), targets, peers, contexts)
def test_forwarded_head_reparses_with_the_same_framing(msg: Message, target: bytes, peer: Peer, ctx) -> None:
    req = parse_request_head(head_bytes(msg))
    out = request_head_bytes(req, target, peer, ctx)
    again = parse_request_head(out[:-2])
    assert (again.method, again.target, again.version) == (req.method, target, req.version)
    assert (again.content_length, again.chunked, again.host) == (req.content_length, req.chunked, req.host)
    assert again.upgrade == req.upgrade
    for name in (b"x-forwarded-proto", b"x-forwarded-host"):
        assert len(again.get_all(name)) <= max(1, len(req.get_all(name)))
    if ctx is not None:
        for name in (b"x-forwarded-context", b"x-proxycontextpath", b"x-forwarded-prefix"):
            assert again.get_all(name) == [ctx]
    if not peer.trusted:
        assert again.get_all(b"x-forwarded-for") == ([peer.address] if peer.address else [])
        assert again.get_all(b"x-forwarded-proto") == [peer.proto]


@FUZZ
@given(requests())
def test_head_without_hop_headers_round_trips_exactly(msg: Message) -> None:
    """A head with nothing to remove, from a trusted UNIX-socket peer, that already
    carries the X-Forwarded headers we would add, is forwarded byte for byte."""
    lines = [msg.start_line] + [h for h in msg.headers if not h.lower().startswith(b"connection:")]
    data = b"".join(line + b"\r\n" for line in lines + [b"X-Forwarded-Proto: https", b"X-Forwarded-Host: h"])
    req = parse_request_head(data)
    assert request_head_bytes(req, req.target, Peer(b"", True, b"http", b""), None) == data + b"\r\n"


@FUZZ
@given(responses(interim=False))
def test_response_without_hop_headers_round_trips_exactly(msg: Message) -> None:
    lines = [msg.start_line] + [h for h in msg.headers if not h.lower().startswith(b"connection:")]
    head = b"".join(line + b"\r\n" for line in lines)
    resp = parse_response_head(head)
    out = response_head_bytes(resp, keep_alive=True, client_is_11=True, reframe=False, context_path=None)
    expected = head if resp.version == b"HTTP/1.1" else b"HTTP/1.1" + head[len(resp.version) :]  # our version
    assert out == expected + b"\r\n"
