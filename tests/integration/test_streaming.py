"""Streaming relay through the real proxy process, checked byte for byte (SPEC §3).

Covers: request-targets and queries passed verbatim; bodies both ways with
Content-Length and chunked framing (trailers kept); HTTP/1.0 clients; HEAD, 204,
304, ``Expect: 100-continue`` and 1xx; pipelining across two backends and
backend keep-alive reuse; SSE delivered event by event; and what happens when a
backend or a client goes away mid-message, connect failures (502) and connect
timeouts (504) — each followed by a check that the proxy holds no leaked socket.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest

from tests.conftest import PROJECT_ID
from tests.support.backends import ScriptedBackend, read_head, simple_response
from tests.support.leaks import Baseline
from tests.support.procs import ProxyProcess, free_port
from tests.support.raw_backends import RawRecordingBackend
from tests.support.waiting import wait_until
from tests.support.wire import (
    Wire,
    connect,
    decode_chunked,
    encode_chunked,
    get,
    iter_chunks,
    read_request_body,
    read_response,
)
from tests.support.wire import read_head as wire_read_head

PID = PROJECT_ID.encode()
CONNECT_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def proxy():
    p = ProxyProcess("project", ["--project-id", PROJECT_ID, "--connect-timeout", str(CONNECT_TIMEOUT)])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def baseline(proxy) -> Baseline:
    assert get(proxy.port, f"/{PROJECT_ID}/healthz").status == 200
    return Baseline.settle(proxy)


@pytest.fixture
def raw_backend():
    b = RawRecordingBackend()
    yield b
    b.close()


def prefix(kind: str, port: int) -> bytes:
    return b"/%s/%s/%d" % (PID, kind.encode(), port)


def exchange(proxy, raw: bytes, method: bytes = b"GET"):
    """Send ``raw`` on a new client connection; (interim heads, final head, raw body)."""
    wire = connect(proxy.port)
    try:
        wire.sock.sendall(raw)
        return read_response(wire, method)
    finally:
        wire.sock.close()


# ---------------------------------------------------------------- 1. request-targets

#: Path tails after the routing prefix (with their queries), each forwarded byte for byte.
ODD_TAILS = [
    pytest.param(b"/a%20b/c%20", id="percent-space"),
    pytest.param(b"/api/contents/dir%2Fname%2f/x", id="encoded-slash-after-prefix"),
    pytest.param(b"/a%2eb/c%2Ed/%2e%2e%2ex", id="encoded-dot-inside-segment"),
    pytest.param(b"/caf\xc3\xa9/\xe2\x9c\x93/\xf0\x9f\x90\x8d", id="raw-utf8"),
    pytest.param(b'/q/"<>{}|^/x', id="unsafe-printables"),
    pytest.param(b"/search?", id="empty-query"),
    pytest.param(b"/?", id="root-empty-query"),
    pytest.param(b"/p?a=1&a=2&a=&a&b=%20+x", id="repeated-keys"),
    pytest.param(b"/p?next=/../x&s=%2F%2e%2e?t=..&u=\xc3\xa9", id="query-with-dots-and-slashes"),
    pytest.param(b"/x;param=1/y//z/", id="params-and-empty-segments"),
]


@pytest.mark.parametrize("tail", ODD_TAILS)
@pytest.mark.parametrize("kind", ["port", "server", "proxy"])
def test_request_target_reaches_backend_verbatim(proxy, raw_backend, kind, tail):
    target = prefix(kind, raw_backend.port) + tail
    _, head, body = exchange(proxy, b"GET " + target + b" HTTP/1.1\r\nHost: proxy.test\r\n\r\n")
    assert (head.status, body) == (200, b"ok")
    [seen] = raw_backend.wait_exchanges(1)
    expected = target if kind == "port" else tail
    assert seen.head.start_line == b"GET " + expected + b" HTTP/1.1"


def test_encoded_slash_in_routing_prefix_is_rejected(proxy, raw_backend):
    _, head, _ = exchange(proxy, b"GET /%s/server%%2F%d/x HTTP/1.1\r\nHost: x\r\n\r\n" % (PID, raw_backend.port))
    assert head.status == 400
    assert raw_backend.exchanges == []


# ---------------------------------------------------------------- 2. bodies both ways

def echo_body(exchange) -> bytes:
    """Answer with the raw request body as a Content-Length body."""
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s" % (
        len(exchange.body), exchange.body)


def test_content_length_bodies_both_ways(proxy):
    payload = os.urandom(3 * 1024 * 1024 + 7)
    with RawRecordingBackend(echo_body) as backend:
        head_bytes = b"POST %s/upload?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (
            prefix("server", backend.port), len(payload))
        _, head, body = exchange(proxy, head_bytes + payload)
        [seen] = backend.wait_exchanges(1)
    assert seen.head.get(b"content-length") == b"%d" % len(payload)
    assert seen.body == payload
    assert head.status == 200
    assert head.content_length == len(payload)
    assert body == payload


def test_chunked_request_with_extensions_and_trailers_is_forwarded_verbatim(proxy, raw_backend):
    chunked = (b"5;name=value\r\nhello\r\n"
               b"1\r\n \r\n"
               b"A\r\n0123456789\r\n"
               b"0\r\nX-Checksum: abc123\r\nX-Other: 1\r\n\r\n")
    raw = (b"POST %s/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
           % prefix("port", raw_backend.port)) + chunked
    _, head, body = exchange(proxy, raw)
    assert (head.status, body) == (200, b"ok")
    [seen] = raw_backend.wait_exchanges(1)
    assert seen.head.get(b"transfer-encoding") == b"chunked"
    assert seen.head.get(b"content-length") is None
    assert seen.body == chunked


def test_chunked_request_sent_in_pieces_streams_to_backend(proxy, raw_backend):
    """Each chunk reaches the backend before the client has sent the next one."""
    got = []

    def slow_reader(conn, number):
        wire_ = Wire(conn)
        head = wire_read_head(wire_)
        assert head.chunked
        for data in iter_chunks(wire_):
            got.append(data)
        conn.sendall(simple_response(200, b"|".join(got)))

    with ScriptedBackend(slow_reader) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"PUT %s/s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % prefix("server", backend.port))
        for i in range(3):
            piece = b"piece-%d" % i
            wire.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            assert wait_until(lambda: len(got) == i + 1, 5), f"chunk {i} not relayed before the next was sent"
        wire.sock.sendall(b"0\r\n\r\n")
        _, head, body = read_response(wire)
        wire.sock.close()
    assert (head.status, body) == (200, b"piece-0|piece-1|piece-2")


CHUNKED_RESPONSE_BODY = encode_chunked([b"first,", b"second,", b"x" * 70000, b"last"],
                                       trailers=b"X-Digest: sha-256=abc\r\nX-Count: 4\r\n")
CHUNKED_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Digest\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n") + CHUNKED_RESPONSE_BODY


def test_chunked_response_with_trailers_reaches_http11_client_verbatim(proxy):
    with RawRecordingBackend(lambda ex: CHUNKED_RESPONSE) as backend:
        wire = connect(proxy.port)
        for _ in range(2):
            wire.sock.sendall(b"GET %s/c HTTP/1.1\r\nHost: x\r\n\r\n" % prefix("server", backend.port))
            _, head, body = read_response(wire)
            assert head.start_line == b"HTTP/1.1 200 OK"
            assert head.get(b"transfer-encoding") == b"chunked"
            assert head.get(b"connection") is None  # keep-alive stays implicit for HTTP/1.1
            assert body == CHUNKED_RESPONSE_BODY
        wire.sock.close()
        assert [e.connection for e in backend.exchanges] == [1, 1]  # the backend connection was reused


def test_http10_client_gets_chunked_response_decoded_then_close(proxy):
    with RawRecordingBackend(lambda ex: CHUNKED_RESPONSE) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"GET %s/c HTTP/1.0\r\nHost: x\r\n\r\n" % prefix("server", backend.port))
        head = wire_read_head(wire)
        body = wire.read_to_eof()  # framing for the 1.0 client: the connection's end
        wire.sock.close()
        [seen] = backend.wait_exchanges(1)
    assert seen.head.start_line.endswith(b" HTTP/1.0")
    assert head.start_line == b"HTTP/1.1 200 OK"
    assert head.get(b"transfer-encoding") is None
    assert head.get(b"content-length") is None
    assert head.get(b"connection") == b"close"
    assert body == decode_chunked(CHUNKED_RESPONSE_BODY)[0]


def test_http10_client_keep_alive_with_content_length(proxy, raw_backend):
    wire = connect(proxy.port)
    for i in range(2):
        wire.sock.sendall(b"GET %s/k%d HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
                          % (prefix("server", raw_backend.port), i))
        _, head, body = read_response(wire)
        assert (head.status, body) == (200, b"ok")
        assert head.get(b"connection") == b"keep-alive"
    wire.sock.close()
    assert [e.target for e in raw_backend.wait_exchanges(2)] == [b"/k0", b"/k1"]


def _by_target(responses: dict):
    return lambda ex: responses[ex.target]


def test_head_204_304_have_no_body_and_connection_continues(proxy):
    heads = {
        b"/head": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n",
        b"/head-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"/nocontent": b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
        b"/notmodified": b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 99\r\n\r\n",
        b"/last": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast",
    }
    methods = [b"HEAD", b"HEAD", b"GET", b"GET", b"GET"]
    with RawRecordingBackend(_by_target(heads)) as backend:
        wire = connect(proxy.port)
        base = prefix("server", backend.port)
        # One write: five pipelined requests; bodyless answers must not eat the next response.
        wire.sock.sendall(b"".join(b"%s %s%s HTTP/1.1\r\nHost: x\r\n\r\n" % (m, base, t)
                                   for m, t in zip(methods, heads)))
        got = [read_response(wire, m) for m in methods]
        assert not wire.closed_within(0.2)  # still open: keep-alive after all five
        wire.sock.close()
    for (target, sent), method, (interim, head, body) in zip(heads.items(), methods, got):
        assert interim == []
        expected_body = sent.split(b"\r\n\r\n", 1)[1]
        assert head.raw == sent[: len(sent) - len(expected_body)], target
        assert body == expected_body, target
    # The proxy framed each bodyless answer right on the backend side too: one connection for all.
    assert [e.connection for e in backend.exchanges] == [1] * 5


def test_expect_100_continue_interim_comes_from_backend(proxy, raw_backend):
    raw_backend.respond = echo_body
    wire = connect(proxy.port)
    wire.sock.sendall(b"POST %s/e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"
                      % prefix("server", raw_backend.port))
    interim = wire_read_head(wire)  # the client waits for it before sending the body
    assert interim.raw == b"HTTP/1.1 100 Continue\r\n\r\n"
    wire.sock.sendall(b"hello world")
    _, head, body = read_response(wire)
    wire.sock.close()
    assert (head.status, body) == (200, b"hello world")
    [seen] = raw_backend.wait_exchanges(1)
    assert seen.head.get(b"expect") == b"100-continue"


def test_expect_100_continue_final_response_instead(proxy, baseline):
    """The backend refuses without reading the body: the client gets the final
    response, never sends the body, and the connection closes (its request
    body is unread, so the connection cannot be reused)."""
    def refuse(conn, number):
        head, _ = read_head(conn)
        assert b"expect: 100-continue" in head.lower()
        conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!")
        conn.recv(1)  # wait for the proxy to close

    with ScriptedBackend(refuse) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"PUT %s/big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n"
                          % prefix("server", backend.port))
        interim, head, body = read_response(wire)
        assert interim == []
        assert (head.status, body) == (413, b"too big!")
        assert head.get(b"connection") == b"close"
        assert wire.closed_within(5)
        wire.sock.close()
    baseline.assert_reached(proxy, what="after a final answer to Expect")


def test_informational_1xx_passed_to_http11_client_and_dropped_for_http10(proxy):
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\nLink: </app.js>; rel=preload\r\n\r\n"
    processing = b"HTTP/1.1 102 Processing\r\n\r\n"
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    with RawRecordingBackend(lambda ex: processing + early + final) as backend:
        base = prefix("server", backend.port)
        interim, head, body = exchange(proxy, b"GET %s/a HTTP/1.1\r\nHost: x\r\n\r\n" % base)
        assert [h.raw for h in interim] == [processing, early]
        assert (head.status, body) == (200, b"hello")
        interim, head, body = exchange(proxy, b"GET %s/b HTTP/1.0\r\nHost: x\r\n\r\n" % base)
        assert interim == []
        assert (head.status, body) == (200, b"hello")


def test_messages_split_into_single_bytes_stay_exact(proxy):
    """Request and response trickle in one byte per write: framing is found and
    every byte is forwarded unchanged (chunk framing and trailers included)."""
    chunked_request = encode_chunked([b"abc", b"defgh"], trailers=b"X-T: 1\r\n")
    seen = []

    def trickle(conn, number):
        wire = Wire(conn)
        head = wire_read_head(wire)
        seen.append((head.start_line, read_request_body(wire, head)))
        for i in range(len(CHUNKED_RESPONSE_SMALL)):
            conn.sendall(CHUNKED_RESPONSE_SMALL[i : i + 1])

    with ScriptedBackend(trickle) as backend:
        wire = connect(proxy.port)
        wire.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw = (b"POST %s/t?q=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               % prefix("server", backend.port)) + chunked_request
        for i in range(len(raw)):
            wire.sock.sendall(raw[i : i + 1])
        interim, head, body = read_response(wire)
        wire.sock.close()
    assert seen == [(b"POST /t?q=1 HTTP/1.1", chunked_request)]
    assert [h.raw for h in interim] == [b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"]
    assert head.raw == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert body == encode_chunked([b"hello", b" world"], trailers=b"X-Sum: 11\r\n")


CHUNKED_RESPONSE_SMALL = (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                          b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          + encode_chunked([b"hello", b" world"], trailers=b"X-Sum: 11\r\n"))


@pytest.mark.parametrize("count", [1, 2, 3])
def test_client_half_close_after_requests_still_gets_responses(proxy, baseline, count):
    """A client that sends its requests and then FIN (``shutdown(SHUT_WR)``, as
    ``printf … | nc -N`` does) gets every answer, in order, then the connection closes."""
    release = threading.Event()

    def slow(ex):
        release.wait(5)
        return simple_response(200, ex.target)

    with RawRecordingBackend(slow) as backend:
        wire = connect(proxy.port)
        base = prefix("server", backend.port)
        wire.sock.sendall(b"".join(b"GET %s/r%d HTTP/1.1\r\nHost: x\r\n\r\n" % (base, i) for i in range(count)))
        wire.sock.shutdown(socket.SHUT_WR)
        assert backend.wait_exchanges(1)  # the first request reached the backend; our FIN is on its way
        release.set()
        try:
            answers = [read_response(wire)[1:] for _ in range(count)]
            assert wire.closed_within(5)
        finally:
            wire.sock.close()
    assert [(h.status, b) for h, b in answers] == [(200, b"/r%d" % i) for i in range(count)]
    baseline.assert_reached(proxy, what="after a client half-close")


def test_connection_close_request_is_answered_then_closed(proxy, raw_backend):
    wire = connect(proxy.port)
    wire.sock.sendall(b"GET %s/bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % prefix("server", raw_backend.port))
    _, head, body = read_response(wire)
    assert (head.status, body) == (200, b"ok")
    assert head.get(b"connection") == b"close"
    assert wire.closed_within(5)
    wire.sock.close()
    [seen] = raw_backend.wait_exchanges(1)
    assert seen.head.get(b"connection") is None  # hop-by-hop: not forwarded


# ---------------------------------------------------------------- 3. keep-alive, pipelining

def test_pipelined_requests_to_two_backends_answered_in_order(proxy):
    def named(name):
        return lambda ex: simple_response(200, name + b":" + ex.target + b":" + ex.body)

    with RawRecordingBackend(named(b"A")) as a, RawRecordingBackend(named(b"B")) as b:
        plan = [(a, b"GET", b"/1", b""), (b, b"GET", b"/2", b""), (a, b"POST", b"/3", b"data-3"),
                (b, b"POST", b"/4", b"x" * 100000), (a, b"GET", b"/5", b""), (b, b"GET", b"/6?q", b"")]
        wire = connect(proxy.port)
        wire.sock.sendall(b"".join(
            b"%s %s%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (m, prefix("server", be.port), t, len(body), body) for be, m, t, body in plan))
        answers = [read_response(wire) for _ in plan]
        wire.sock.close()
        for (be, _, t, body), (_, head, got) in zip(plan, answers):
            name = b"A" if be is a else b"B"
            assert (head.status, got) == (200, name + b":" + t + b":" + body)
        # Each backend got its three requests in order on one pooled connection.
        assert [(e.target, e.connection) for e in a.exchanges] == [(b"/1", 1), (b"/3", 1), (b"/5", 1)]
        assert [(e.target, e.connection) for e in b.exchanges] == [(b"/2", 1), (b"/4", 1), (b"/6?q", 1)]


def test_backend_keep_alive_connection_reused_across_clients(proxy, backend):
    for i in range(3):  # a new client connection each time
        a = get(proxy.port, f"/{PROJECT_ID}/server/{backend.port}/seq{i}")
        assert (a.status, a.body) == (200, b"ok")
    seen = backend.wait_requests(3)
    assert [(r.target, r.connection) for r in seen] == [(b"/seq0", 1), (b"/seq1", 1), (b"/seq2", 1)]
    assert backend.accepted == 1


def test_pipelined_upload_waits_behind_slow_response(proxy):
    """A large POST pipelined behind a slow GET: its body waits (in kernel
    buffers, the proxy stops reading) and then goes through intact."""
    release = threading.Event()
    payload = os.urandom(6 << 20)

    def respond(ex):
        if ex.target == b"/slow":
            release.wait(10)
            return simple_response(200, b"slow done")
        return simple_response(200, hashlib.sha256(ex.body).hexdigest().encode())

    with RawRecordingBackend(respond) as backend:
        base = prefix("server", backend.port)
        wire = connect(proxy.port)
        data = (b"GET %s/slow HTTP/1.1\r\nHost: x\r\n\r\n" % base
                + b"POST %s/big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (base, len(payload)) + payload)
        sender = threading.Thread(target=wire.sock.sendall, args=(data,), daemon=True)
        sender.start()
        assert backend.wait_exchanges(1)[0].target == b"/slow"
        release.set()
        first = read_response(wire)[1:]
        second = read_response(wire)[1:]
        sender.join(10)
        wire.sock.close()
    assert [(h.status, b) for h, b in (first, second)] == [
        (200, b"slow done"), (200, hashlib.sha256(payload).hexdigest().encode())]


def test_full_duplex_streaming_echo(proxy):
    """The backend streams its answer while the request body is still arriving
    (a chunked echo): both directions flow at once through the proxy."""
    parts = [os.urandom(64 * 1024 + i) for i in range(64)]

    def streaming_echo(conn, number):
        wire = Wire(conn)
        head = wire_read_head(wire)
        assert head.chunked
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for data in iter_chunks(wire):
            conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        conn.sendall(b"0\r\n\r\n")

    with ScriptedBackend(streaming_echo) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"POST %s/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          % prefix("server", backend.port))
        head = wire_read_head(wire)  # arrives before any of the body has been sent
        assert head.status == 200
        echoed = []
        chunks = iter_chunks(wire)
        for part in parts:  # lock-step: each part must come back before the next goes out
            wire.sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            got = b""
            while len(got) < len(part):
                got += next(chunks)
            echoed.append(got)
        wire.sock.sendall(b"0\r\n\r\n")
        assert list(chunks) == []
        wire.sock.close()
    assert echoed == parts


def test_odd_but_valid_chunk_framing_passes_unchanged(proxy):
    body = (b"00A;name=\"quoted value\"\r\n0123456789\r\n"
            b"1f\r\n" + b"y" * 31 + b"\r\n"
            b"000\r\nX-Trailer: a\r\nX-Trailer: b\r\n\r\n")
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    with RawRecordingBackend(lambda ex: response) as backend:
        _, head, got = exchange(proxy, b"GET %s/odd HTTP/1.1\r\nHost: x\r\n\r\n" % prefix("server", backend.port))
    assert head.chunked
    assert got == body
    assert decode_chunked(got) == (b"0123456789" + b"y" * 31, b"X-Trailer: a\r\nX-Trailer: b\r\n")


# ---------------------------------------------------------------- 5. server-sent events

def test_sse_events_arrive_one_by_one(proxy):
    """The backend sends event N+1 only after the client has received event N
    (with a deadline), so any buffering in the proxy fails the test."""
    count = 5
    received = [threading.Event() for _ in range(count)]
    backend_error = []

    def sse(conn, number):
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(count):
            event = b"id: %d\ndata: event %d\n\n" % (i, i)
            conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            if not received[i].wait(5):
                backend_error.append(f"client did not get event {i} within 5 s")
                return
        conn.sendall(b"0\r\n\r\n")

    with ScriptedBackend(sse) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"GET %s/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
                          % prefix("server", backend.port))
        head = wire_read_head(wire)
        assert head.get(b"content-type") == b"text/event-stream"
        events = []
        for data in iter_chunks(wire):
            events.append(data)
            received[len(events) - 1].set()
        wire.sock.close()
    assert backend_error == []
    assert events == [b"id: %d\ndata: event %d\n\n" % (i, i) for i in range(count)]


# ---------------------------------------------------------------- 6. failures

@pytest.mark.parametrize("how", ["fin", "rst"])
def test_backend_dies_mid_response_closes_client(proxy, baseline, how):
    def die(conn, number):
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 300)
        if how == "rst":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    with ScriptedBackend(die) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"GET %s/die HTTP/1.1\r\nHost: x\r\n\r\n" % prefix("server", backend.port))
        head = wire_read_head(wire)
        assert head.status == 200 and head.content_length == 1000
        # Closed, truncated: never a hang, never a keep-alive connection.
        assert wire.closed_within(5), "client connection left open after the backend died mid-body"
        assert bytes(wire.buf) == b"x" * 300
        wire.sock.close()
    baseline.assert_reached(proxy, what="backend died mid-response")


def test_backend_dies_mid_chunked_response_closes_client_without_last_chunk(proxy, baseline):
    def die(conn, number):
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nonly-half")

    with ScriptedBackend(die) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"GET %s/die HTTP/1.1\r\nHost: x\r\n\r\n" % prefix("server", backend.port))
        assert wire_read_head(wire).chunked
        assert wire.closed_within(5)
        assert bytes(wire.buf) == b"5\r\nhello\r\n10\r\nonly-half"  # no 0-chunk invented
        wire.sock.close()
    baseline.assert_reached(proxy, what="backend died mid-chunked-response")


def test_client_disconnect_mid_upload_closes_backend(proxy, baseline):
    outcome = []

    def slow_sink(conn, number):
        head, extra = read_head(conn)
        total = len(extra)
        conn.settimeout(10)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    outcome.append(("eof", total))
                    return
                total += len(data)
        except ConnectionResetError:
            outcome.append(("reset", total))
        except socket.timeout:
            outcome.append(("still open", total))

    with ScriptedBackend(slow_sink) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"POST %s/up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
                          % prefix("server", backend.port) + b"y" * 1000000)
        assert wait_until(lambda: backend.accepted == 1, 5)
        wire.sock.close()
        assert wait_until(lambda: outcome, 8)
    assert outcome[0][0] in ("eof", "reset")
    assert outcome[0][1] <= 1000000
    baseline.assert_reached(proxy, what="client left mid-upload")


def test_client_disconnect_mid_download_closes_backend(proxy, baseline):
    outcome = []
    block = b"z" * 65536

    def endless(conn, number):
        read_head(conn)
        conn.settimeout(10)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
        try:
            while True:
                conn.sendall(block)
        except (BrokenPipeError, ConnectionResetError):
            outcome.append("closed")
        except socket.timeout:
            outcome.append("stuck")

    with ScriptedBackend(endless) as backend:
        wire = connect(proxy.port)
        wire.sock.sendall(b"GET %s/down HTTP/1.1\r\nHost: x\r\n\r\n" % prefix("server", backend.port))
        wire_read_head(wire)
        wire.read_exact(1 << 20)
        wire.sock.close()
        assert wait_until(lambda: outcome, 12)
    assert outcome == ["closed"]
    baseline.assert_reached(proxy, what="client left mid-download")


def test_nothing_listening_is_502(proxy, baseline):
    port = free_port()
    _, head, body = exchange(proxy, b"GET %s/x HTTP/1.1\r\nHost: x\r\n\r\n" % prefix("server", port))
    assert head.status == 502
    assert head.get(b"connection") == b"close"
    assert b"connection refused" in body
    baseline.assert_reached(proxy, what="after a 502")


def test_backend_closing_before_answer_is_502(proxy, baseline):
    def hang_up(conn, number):
        read_head(conn)

    with ScriptedBackend(hang_up) as backend:
        _, head, _ = exchange(proxy, b"GET %s/x HTTP/1.1\r\nHost: x\r\n\r\n" % prefix("server", backend.port))
    assert head.status == 502
    baseline.assert_reached(proxy, what="after the backend hung up")


class FullAcceptQueue:
    """A loopback port whose accept queue is full: connects to it hang (SYNs dropped)."""

    def __enter__(self) -> int:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        port = self.listener.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", port), timeout=2)
        return port

    def __exit__(self, *exc) -> None:
        self.filler.close()
        self.listener.close()


def test_connect_timeout_is_504(proxy, baseline):
    """A loopback listener with a full accept queue drops SYNs, so a connect to
    it neither succeeds nor is refused — a deterministic connect timeout.  The
    precondition is checked first with a probe."""
    with FullAcceptQueue() as port:
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            with pytest.raises((socket.timeout, TimeoutError)):
                probe.connect(("127.0.0.1", port))
        finally:
            probe.close()
        started = time.monotonic()
        _, head, body = exchange(proxy, b"GET %s/x HTTP/1.1\r\nHost: x\r\n\r\n" % prefix("server", port))
        elapsed = time.monotonic() - started
    assert head.status == 504
    assert head.get(b"connection") == b"close"
    assert b"in time" in body
    assert CONNECT_TIMEOUT - 0.1 <= elapsed < CONNECT_TIMEOUT + 3
    baseline.assert_reached(proxy, what="after a connect timeout")


def leave_during_connect(proxy, port: int) -> None:
    wire = connect(proxy.port)
    wire.sock.sendall(b"GET %s/x HTTP/1.1\r\nHost: x\r\n\r\n" % prefix("server", port))
    assert wait_until(lambda: proxy.tcp_connections() == 2, 2)  # client side + pending connect
    wire.sock.close()


def test_client_leaving_during_connect_leaks_nothing(proxy, baseline):
    with FullAcceptQueue() as port:
        leave_during_connect(proxy, port)
        baseline.assert_reached(proxy, timeout=CONNECT_TIMEOUT + 3, what="client left during connect")


def test_upload_and_download_hashes_match(proxy):
    """A mid-size round trip (8 MiB each way) on one keep-alive client connection."""
    payload = os.urandom(8 << 20)
    digest = hashlib.sha256(payload).hexdigest().encode()

    def digest_then_echo(ex):
        if ex.target == b"/hash":
            return simple_response(200, hashlib.sha256(ex.body).hexdigest().encode())
        return echo_body(ex)

    with RawRecordingBackend(digest_then_echo) as backend:
        wire = connect(proxy.port)
        base = prefix("server", backend.port)
        wire.sock.sendall(b"POST %s/hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (base, len(payload)) + payload)
        _, head, body = read_response(wire)
        assert (head.status, body) == (200, digest)
        wire.sock.sendall(b"POST %s/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (base, len(payload)) + payload)
        _, head, body = read_response(wire)
        wire.sock.close()
    assert head.status == 200 and body == payload
    assert [e.connection for e in backend.exchanges] == [1, 1]

