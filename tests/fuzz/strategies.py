"""Hypothesis strategies for valid HTTP/1.x messages, and the shared bounded settings.

Generated messages are valid by construction and also acceptable to h11 (the
differential oracle): only ``chunked`` as a transfer-coding, no obs-fold, header
values without leading/trailing whitespace in the value itself (the raw line
may still carry optional whitespace around it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Every property here: bounded examples, no per-example deadline (CI machines are noisy).
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

#: Properties over several messages per example (pipelines, series): fewer, bigger examples.
FUZZ_MULTI = settings(FUZZ, max_examples=100)

TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Header names the generators add themselves (framing, connection handling).
RESERVED = {
    b"content-length",
    b"transfer-encoding",
    b"connection",
    b"host",
    b"upgrade",
    b"expect",
    b"keep-alive",
    b"te",
    b"trailer",
    b"proxy-connection",
}

tokens = st.binary(min_size=1, max_size=12).map(lambda b: bytes(TOKEN_CHARS[x % len(TOKEN_CHARS)] for x in b))
header_names = tokens.filter(lambda n: n.lower() not in RESERVED and not n.lower().startswith(b"x-forwarded"))
_VCHAR = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
vchar_strings = st.binary(max_size=20).map(lambda b: bytes(_VCHAR[x % len(_VCHAR)] for x in b))


#: Header values: VCHAR/obs-text with inner spaces and tabs, no outer whitespace.
#: (One binary draw mapped onto the alphabet: much cheaper than composite draws.)
_VALUE_ALPHABET = _VCHAR + b" \t" * 24


def header_values() -> st.SearchStrategy[bytes]:
    return st.binary(max_size=24).map(
        lambda b: bytes(_VALUE_ALPHABET[x % len(_VALUE_ALPHABET)] for x in b).strip(b" \t")
    )


ows = st.sampled_from([b"", b" ", b"  ", b"\t"])


def header_lines(max_size: int = 5) -> st.SearchStrategy[list[bytes]]:
    line = st.tuples(header_names, ows, header_values(), ows).map(lambda t: t[0] + b":" + t[1] + t[2] + t[3])
    return st.lists(line, max_size=max_size)


_PATH_CHARS = b"abcxyz019-._~!$&'()*+,;=:@%/\"<>{}|^`" + bytes(range(0x80, 0x100, 17))
targets = st.builds(
    lambda path, query: b"/" + path + query,
    st.binary(max_size=30).map(lambda b: bytes(_PATH_CHARS[x % len(_PATH_CHARS)] for x in b)),
    st.one_of(
        st.just(b""), st.binary(max_size=15).map(lambda b: b"?" + bytes(_PATH_CHARS[x % len(_PATH_CHARS)] for x in b))
    ),
)
methods = st.one_of(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"]), tokens)


@dataclass
class Message:
    """One generated message: its bytes and what a correct parser must see."""

    data: bytes
    start_line: bytes
    headers: list[bytes]
    payload: bytes  # the decoded body
    body_raw: bytes  # the body bytes on the wire (chunk framing included)
    framing: str  # "none", "length", "chunked", "close"
    keep_alive: bool
    extra: dict = field(default_factory=dict)


def _chunk(t: tuple) -> tuple[bytes, bytes]:
    data, upper, zeros, ext = t
    size = b"%x" % len(data)
    return b"0" * zeros + (size.upper() if upper else size) + ext + b"\r\n" + data + b"\r\n", data


_chunks = st.tuples(
    st.binary(min_size=1, max_size=40),
    st.booleans(),
    st.sampled_from([0, 0, 0, 1, 3]),
    st.sampled_from([b"", b"", b";a=b", b';name="q;v"', b" ;x"]),
).map(_chunk)


def chunked_bodies() -> st.SearchStrategy[tuple[bytes, bytes]]:
    """(raw chunked body, payload), with optional extensions and trailers."""

    def build(t: tuple) -> tuple[bytes, bytes]:
        chunks, last_ext, trailers = t
        raw = b"".join(c[0] for c in chunks) + b"0" + last_ext + b"\r\n"
        raw += b"".join(line + b"\r\n" for line in trailers) + b"\r\n"
        return raw, b"".join(c[1] for c in chunks)

    return st.tuples(st.lists(_chunks, max_size=4), st.sampled_from([b"", b";end"]), header_lines(max_size=2)).map(
        build
    )


@st.composite
def requests(draw, allow_http10: bool = True) -> Message:
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"] if allow_http10 else [b"HTTP/1.1"]))
    method = draw(methods)
    target = draw(targets)
    headers = draw(header_lines())
    framing = draw(st.sampled_from(["none", "length", "chunked"] if version == b"HTTP/1.1" else ["none", "length"]))
    payload = body_raw = b""
    if framing == "length":
        payload = body_raw = draw(st.binary(max_size=60))
        headers.insert(draw(st.integers(0, len(headers))), b"Content-Length: %d" % len(payload))
    elif framing == "chunked":
        body_raw, payload = draw(chunked_bodies())
        headers.insert(draw(st.integers(0, len(headers))), b"Transfer-Encoding: chunked")
    if version == b"HTTP/1.1" or draw(st.booleans()):
        headers.insert(
            draw(st.integers(0, len(headers))), b"Host: " + draw(st.sampled_from([b"a", b"example.org:8080", b"[::1]"]))
        )
    connection = draw(st.sampled_from([None, b"close", b"keep-alive", b"Keep-Alive", b"x-hop, close"]))
    if connection is not None:
        headers.append(b"Connection: " + connection)
    conn_tokens = [t.strip().lower() for t in (connection or b"").split(b",")]
    if version == b"HTTP/1.1":
        keep_alive = b"close" not in conn_tokens
    else:
        keep_alive = b"keep-alive" in conn_tokens and b"close" not in conn_tokens
    start = method + b" " + target + b" " + version
    data = start + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body_raw
    return Message(
        data,
        start,
        headers,
        payload,
        body_raw,
        framing,
        keep_alive,
        {"method": method, "target": target, "version": version},
    )


@st.composite
def responses(draw, head_request: bool = False, allow_close: bool = True, interim: bool = True) -> Message:
    """A response; framing "close" (read until EOF) only when ``allow_close``."""
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 301, 302, 304, 400, 404, 500, 503]) | st.integers(200, 599))
    reason = draw(st.sampled_from([b"OK", b"", b"Not Found", b"Odd  Reason\t1"]))
    headers = draw(header_lines())
    no_body = head_request or status in (204, 304)
    choices = ["length", "chunked"] + (["close"] if allow_close else [])
    framing = draw(st.sampled_from(choices))
    payload = body_raw = b""
    if framing == "length":
        payload = draw(st.binary(max_size=60))
        headers.insert(draw(st.integers(0, len(headers))), b"Content-Length: %d" % len(payload))
    elif framing == "chunked":
        body_raw, payload = draw(chunked_bodies())
        headers.insert(draw(st.integers(0, len(headers))), b"Transfer-Encoding: chunked")
    else:
        payload = draw(st.binary(max_size=60))
    if framing == "length":
        body_raw = payload
    elif framing == "close":
        body_raw = payload
    if no_body:
        payload = body_raw = b""
        framing = "none"
    connection = draw(st.sampled_from([None, b"close", b"keep-alive"]))
    if connection is not None:
        headers.append(b"Connection: " + connection)
    if version == b"HTTP/1.1":
        keep_alive = connection != b"close"
    else:
        keep_alive = connection == b"keep-alive"
    start = version + b" %d" % status + (b" " + reason if reason or draw(st.booleans()) else b"")
    prefix = b""
    if interim and draw(st.integers(0, 4)) == 0:
        prefix = b"HTTP/1.1 100 Continue\r\n\r\n"
    data = prefix + start + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body_raw
    return Message(
        data,
        start,
        headers,
        payload,
        body_raw,
        framing,
        keep_alive,
        {"status": status, "reason": reason, "version": version, "interim": bool(prefix)},
    )


@st.composite
def split_points(draw, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points; one time in four, into single bytes."""
    if not data:
        return [data]
    if draw(st.integers(0, 3)) == 0:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    pieces, last = [], 0
    for cut in cuts + [len(data)]:
        pieces.append(data[last:cut])
        last = cut
    return [p for p in pieces if p] or [data]
