"""The WebSocket ↔ raw TCP bridge on fake transports and a fake clock (no sockets).

Client frames are built by hand (masked, as a browser sends them) and the
server's frames parsed back from the client transport, so every byte the bridge
writes is checked: handshake and subprotocol choice, what reaches the target
and when, producer wiring, close codes and timers.  The last part covers the
bridge role's pieces that need no reactor: target strings, token files,
``--web`` lookups and the role's router.
"""

from __future__ import annotations

import base64
import os
import struct

import pytest
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import usage
from twisted.python.failure import Failure

from cocalcproxy.bridge_targets import FastTCPClientEndpoint, FirstRefusedNext, TargetError, parse_target
from cocalcproxy.bridge_tokens import Target, TokenTable, parse_token_lines
from cocalcproxy.http1.head import parse_request_head
from cocalcproxy.net.gate import CONNECTING
from cocalcproxy.proxy.factory import ConnectionTracker, ProxyConfig, ProxyFactory
from cocalcproxy.routing.types import Handoff, Local, Redirect, Reject
from cocalcproxy.static_files import FileFound, NeedsSlash, WebRoot, read_small
from cocalcproxy.wsbridge import BridgeFactory, BridgeProtocol, bridge_start

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class Transport(StringTransport):
    """StringTransport plus the calls real TCP transports have."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.write_closed = False
        self.aborted = False

    def loseWriteConnection(self):
        self.write_closed = True

    def abortConnection(self):
        self.aborted = True
        self.loseConnection()


def client_transport():
    return Transport(hostAddress=IPv4Address("TCP", "127.0.0.1", 6080), peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))


class FakeEndpoint:
    """Records connects; the test completes or fails them."""

    def __init__(self):
        self.connects: list[tuple[object, defer.Deferred]] = []

    def connect(self, factory):
        d = defer.Deferred()
        self.connects.append((factory, d))
        return d

    def complete(self, index: int = -1):
        factory, d = self.connects[index]
        proto = factory.buildProtocol(None)
        t = Transport()
        proto.makeConnection(t)
        d.callback(proto)
        return proto, t

    def fail(self, index: int = -1):
        self.connects[index][1].errback(Failure(error.ConnectionRefusedError()))


def upgrade_head(path: bytes = b"/", protocols: bytes | None = None, extra: bytes = b"") -> bytes:
    lines = [
        b"GET " + path + b" HTTP/1.1",
        b"Host: bridge.example",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + KEY,
        b"Sec-WebSocket-Version: 13",
    ]
    if protocols is not None:
        lines.append(b"Sec-WebSocket-Protocol: " + protocols)
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    """A masked client frame."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def close_frame(code: int = 1000, reason: bytes = b"") -> bytes:
    return frame(8, struct.pack("!H", code) + reason)


def split_response(data: bytes) -> tuple[bytes, bytes]:
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data
    return head, rest


def parse_frames(data: bytes) -> list[tuple[bool, int, bytes]]:
    """Unmasked server frames → [(fin, opcode, payload)]; all bytes must be consumed."""
    out = []
    i = 0
    while i < len(data):
        b0, b1 = data[i], data[i + 1]
        assert not b1 & 0x80, "server frames are not masked"
        n = b1 & 0x7F
        i += 2
        if n == 126:
            (n,) = struct.unpack("!H", data[i:i + 2])
            i += 2
        elif n == 127:
            (n,) = struct.unpack("!Q", data[i:i + 8])
            i += 8
        assert i + n <= len(data), "truncated frame"
        out.append((bool(b0 & 0x80), b0 & 0x0F, data[i:i + n]))
        i += n
    return out


def close_code(payload: bytes) -> tuple[int, bytes]:
    return struct.unpack("!H", payload[:2])[0], payload[2:]


class Bridge:
    """One bridge connection on fake transports."""

    def __init__(self, protocols: bytes | None = None, extra_raw: bytes = b"", max_message: int | None = None):
        self.clock = MemoryReactorClock()
        self.endpoint = FakeEndpoint()
        kw = {} if max_message is None else {"max_message": max_message}
        self.factory = BridgeFactory(self.clock, **kw)
        self.ct = client_transport()
        self.proto: BridgeProtocol = self.factory.starter(self.endpoint)(self.ct, upgrade_head(protocols=protocols) + extra_raw)
        self.head, rest = split_response(self.ct.value())
        self.ct.clear()
        self.early_frames = parse_frames(rest)
        self.target = None
        self.tt = None

    def connect(self):
        self.target, self.tt = self.endpoint.complete()
        return self.target, self.tt

    def send(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def frames(self) -> list[tuple[bool, int, bytes]]:
        out = parse_frames(self.ct.value())
        self.ct.clear()
        return out


# ---------------------------------------------------------------- handshake


def test_client_offering_no_subprotocol_is_accepted_and_target_connected_on_open():
    b = Bridge()
    assert b.head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: " + ACCEPT in b.head
    assert b"sec-websocket-protocol" not in b.head.lower()
    assert b"sec-websocket-extensions" not in b.head.lower()
    assert len(b.endpoint.connects) == 1
    assert b.ct.producerState == "paused" and b.proto.client_gate.reasons == CONNECTING
    target, tt = b.connect()
    assert b.ct.producerState == "producing"
    assert b.ct.producer is b.proto.target_gate and b.proto.target_gate.transport is tt
    assert tt.producer is b.proto.client_gate and b.proto.client_gate.transport is b.ct


@pytest.mark.parametrize(
    "offered, chosen",
    [(b"binary", b"binary"), (b"base64, binary", b"binary"), (b"base64", b"base64"), (b"chat", None)],
)
def test_subprotocol_choice(offered, chosen):
    b = Bridge(protocols=offered)
    assert b.head.startswith(b"HTTP/1.1 101 ")
    if chosen is None:
        assert b"sec-websocket-protocol" not in b.head.lower()
    else:
        assert b"\r\nSec-WebSocket-Protocol: " + chosen in b.head + b"\r\n"


def test_compression_offer_is_declined():
    clock = MemoryReactorClock()
    factory = BridgeFactory(clock)
    ct = client_transport()
    proto = factory.starter(FakeEndpoint())(ct, upgrade_head(extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n"))
    assert ct.value().startswith(b"HTTP/1.1 101 ")
    assert b"permessage-deflate" not in ct.value() and proto._perMessageCompress is None
    assert proto.autoFragmentSize == 65536


def test_bridge_start_builds_a_handoff_start_callable():
    clock = MemoryReactorClock()
    endpoint = FakeEndpoint()
    seen = []
    start = bridge_start(clock, endpoint, max_message=1 << 20, activity=lambda: seen.append(1))
    ct = client_transport()
    proto = start(ct, upgrade_head(protocols=b"binary"))
    assert isinstance(proto, BridgeProtocol)
    assert proto.factory.reactor is clock and proto.maxMessagePayloadSize == 1 << 20
    assert ct.value().startswith(b"HTTP/1.1 101 ") and len(endpoint.connects) == 1
    assert seen == []
    target, _ = endpoint.complete()
    proto.dataReceived(frame(2, b"up"))
    target.dataReceived(b"down")
    assert len(seen) == 2  # data passing either way counts as activity


# ------------------------------------------------------------ client → target


def test_frames_received_with_the_head_wait_for_the_target():
    b = Bridge()
    b.send(frame(2, b"early"))
    assert b.proto.pending == [b"early"]
    _, tt = b.connect()
    assert tt.value() == b"early"
    b.send(frame(2, b" later"))
    assert tt.value() == b"early later"


def test_raw_bytes_after_the_head_are_replayed():
    clock = MemoryReactorClock()
    endpoint = FakeEndpoint()
    ct = client_transport()
    BridgeFactory(clock).starter(endpoint)(ct, upgrade_head() + frame(2, b"in the same read"))
    _, tt = endpoint.complete()
    assert tt.value() == b"in the same read"


def test_binary_and_text_messages_reach_the_target_as_bytes():
    b = Bridge()
    _, tt = b.connect()
    b.send(frame(2, b"\x00\xffbin"))
    b.send(frame(1, "héllo".encode()))
    assert tt.value() == b"\x00\xffbin" + "héllo".encode()


def test_frame_payload_is_forwarded_before_the_frame_is_complete():
    b = Bridge()
    _, tt = b.connect()
    payload = bytes(range(256)) * 1024  # 256 KiB in one frame
    data = frame(2, payload)
    b.send(data[:1000])
    assert 0 < len(tt.value()) < 1000 and payload.startswith(tt.value())
    b.send(data[1000:100000])
    assert len(tt.value()) > 90000
    b.send(data[100000:])
    assert tt.value() == payload


def test_fragmented_message_is_streamed_frame_by_frame():
    b = Bridge()
    _, tt = b.connect()
    b.send(frame(2, b"one ", fin=False))
    assert tt.value() == b"one "
    b.send(frame(0, b"two ", fin=False) + frame(9, b"ping") + frame(0, b"three"))
    assert tt.value() == b"one two three"
    assert b.frames() == [(True, 10, b"ping")]


def test_base64_mode_decodes_text_split_anywhere():
    b = Bridge(protocols=b"base64")
    _, tt = b.connect()
    text = base64.b64encode(b"raw \x00\x01 bytes!")
    b.send(frame(1, text[:5], fin=False) + frame(0, text[5:9], fin=False) + frame(0, text[9:]))
    assert tt.value() == b"raw \x00\x01 bytes!"
    b.target.dataReceived(b"\xff\xfe reply")
    assert b.frames() == [(True, 1, base64.b64encode(b"\xff\xfe reply"))]


def test_base64_mode_bad_text_closes_1007():
    b = Bridge(protocols=b"base64")
    _, tt = b.connect()
    b.send(frame(1, b"!!!!"))
    (fin, op, payload), = b.frames()
    assert op == 8 and close_code(payload)[0] == 1007
    assert tt.value() == b""


def test_invalid_utf8_in_a_text_message_closes_1007():
    b = Bridge()
    _, tt = b.connect()
    b.send(frame(1, b"ok \xff\xfe"))
    (fin, op, payload), = b.frames()
    assert op == 8 and close_code(payload)[0] == 1007


def test_message_larger_than_the_limit_closes_1009():
    b = Bridge(max_message=1024)
    _, tt = b.connect()
    b.send(frame(2, b"x" * 2048))
    (fin, op, payload), = b.frames()
    assert op == 8 and close_code(payload)[0] == 1009
    assert tt.value() == b""


# ------------------------------------------------------------ target → client


def test_target_data_becomes_binary_messages_fragmented_at_64k():
    b = Bridge(protocols=b"binary")
    target, _ = b.connect()
    target.dataReceived(b"small")
    data = os.urandom(150 * 1024)
    target.dataReceived(data)
    frames = b.frames()
    assert frames[0] == (True, 2, b"small")
    assert [(fin, op, len(p)) for fin, op, p in frames[1:]] == [(False, 2, 65536), (False, 0, 65536), (True, 0, 150 * 1024 - 131072)]
    assert b"".join(p for _, _, p in frames[1:]) == data


def test_backpressure_wiring_both_ways():
    b = Bridge()
    _, tt = b.connect()
    b.ct.producer.pauseProducing()  # the client socket's buffer is full
    assert tt.producerState == "paused"
    b.ct.producer.resumeProducing()
    assert tt.producerState == "producing"
    tt.producer.pauseProducing()  # the target's socket buffer is full
    assert b.ct.producerState == "paused"
    tt.producer.resumeProducing()
    assert b.ct.producerState == "producing"


# ------------------------------------------------------------------ closing


def test_target_eof_closes_1000_after_the_data_and_the_close_reply_ends_both():
    b = Bridge()
    target, tt = b.connect()
    target.dataReceived(b"last words")
    target.readConnectionLost()
    frames = b.frames()
    assert frames[0] == (True, 2, b"last words")
    assert frames[1][1] == 8 and close_code(frames[1][2]) == (1000, b"Target closed")
    assert not b.ct.disconnecting
    b.send(close_frame(1000))
    assert b.ct.disconnecting and b.ct.producer is None
    b.proto.connectionLost(Failure(error.ConnectionDone()))
    assert tt.disconnecting and tt.producer is None
    assert b.clock.getDelayedCalls() == []


def test_target_connection_lost_while_client_paused_still_reads_the_close_reply():
    b = Bridge()
    target, tt = b.connect()
    tt.producer.pauseProducing()
    assert b.ct.producerState == "paused"
    target.connectionLost(Failure(error.ConnectionDone()))
    assert b.ct.producerState == "producing"
    (_, op, payload), = b.frames()
    assert op == 8 and close_code(payload)[0] == 1000


def test_connect_failure_closes_1011():
    b = Bridge()
    b.send(frame(2, b"never delivered"))
    b.endpoint.fail()
    (_, op, payload), = b.frames()
    assert op == 8 and close_code(payload)[0] == 1011
    assert b.ct.producerState == "producing"  # the close reply can be read
    b.send(close_frame(1011))
    assert b.ct.disconnecting


def test_client_close_flushes_pending_bytes_then_shuts_the_target():
    b = Bridge()
    _, tt = b.connect()
    b.send(frame(2, b"goodbye") + close_frame(1000))
    assert tt.value() == b"goodbye"
    (_, op, payload), = b.frames()
    assert op == 8 and close_code(payload)[0] == 1000  # the closing handshake reply
    assert b.ct.disconnecting
    b.proto.connectionLost(Failure(error.ConnectionDone()))
    assert tt.disconnecting and tt.producer is None
    assert b.clock.getDelayedCalls() == []


def test_client_gone_while_connecting_with_data_delivers_it_then_closes():
    b = Bridge()
    b.send(frame(2, b"fire and forget"))
    b.proto.connectionLost(Failure(error.ConnectionLost()))
    target, tt = b.connect()
    assert tt.value() == b"fire and forget" and tt.disconnecting
    assert target.bridge is None


def test_client_gone_while_connecting_without_data_cancels_the_connect():
    b = Bridge()
    d = b.endpoint.connects[0][1]
    b.proto.connectionLost(Failure(error.ConnectionLost()))
    assert d.called and b.proto.connect_d is None  # cancelled: CancelledError, handled
    assert b.ct.value() == b""


def test_client_fin_closes_the_connection():
    b = Bridge()
    b.connect()
    b.proto.readConnectionLost()
    assert b.ct.disconnecting and b.ct.producer is None


def test_close_handshake_timeout_runs_on_our_clock():
    b = Bridge()
    target, _ = b.connect()
    target.readConnectionLost()
    assert [c for c in b.clock.getDelayedCalls() if c.active()]
    b.clock.advance(5)
    assert b.ct.aborted


def test_drain_says_going_away():
    b = Bridge()
    b.connect()
    b.proto.begin_drain()
    (_, op, payload), = b.frames()
    assert op == 8 and close_code(payload)[0] == 1001


def test_failed_handshake_is_answered_by_autobahn_and_connects_nothing():
    clock = MemoryReactorClock()
    endpoint = FakeEndpoint()
    ct = client_transport()
    BridgeFactory(clock).starter(endpoint)(ct, upgrade_head().replace(b"Version: 13", b"Version: 99"))
    assert ct.value().startswith(b"HTTP/1.1 400 ")
    assert endpoint.connects == []


# --------------------------------------------------------- through HttpFront


def test_handoff_from_the_http_front_fed_one_byte_at_a_time():
    clock = MemoryReactorClock()
    endpoint = FakeEndpoint()
    start = bridge_start(clock, endpoint)
    config = ProxyConfig()
    tracker = ConnectionTracker(clock, config.max_connections)
    factory = ProxyFactory(clock, config, lambda req: Handoff(start), tracker, None)
    front = factory.buildProtocol(None)
    ct = client_transport()
    front.makeConnection(ct)
    data = upgrade_head(b"/websockify?x=1", b"binary") + frame(2, b"hi")
    for i in range(len(data)):
        front.dataReceived(data[i:i + 1])
    assert ct.value().startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Protocol: binary" in ct.value()
    target, tt = endpoint.complete()
    assert tt.value() == b"hi"
    front.dataReceived(frame(2, b" there"))
    assert tt.value() == b"hi there"
    ct.clear()
    target.dataReceived(b"back")
    assert parse_frames(ct.value()) == [(True, 2, b"back")]
    front.readConnectionLost()  # client FIN: reaches the bridge through the front
    assert ct.disconnecting
    front.connectionLost(Failure(error.ConnectionDone()))
    assert tt.disconnecting and not tracker.connections
    assert clock.getDelayedCalls() == []


# ------------------------------------------------------------ target strings


@pytest.mark.parametrize(
    "text, kind, where",
    [
        ("tcp:127.0.0.1:5900", FastTCPClientEndpoint, ("127.0.0.1", 5900)),
        ("tcp:[::1]:5901", FastTCPClientEndpoint, ("::1", 5901)),
        ("tcp:::1:5902", FastTCPClientEndpoint, ("::1", 5902)),
        ("tcp:\\:\\:1:5903", FastTCPClientEndpoint, ("::1", 5903)),
        ("tcp:host=127.0.0.1:port=5904", FastTCPClientEndpoint, ("127.0.0.1", 5904)),
        ("tcp:localhost:5905", FirstRefusedNext, None),
        ("tcp:vnc.example.org:5906", HostnameEndpoint, None),
        ("unix:/run/vnc.sock", UNIXClientEndpoint, None),
        ("unix:path=/run/vnc.sock", UNIXClientEndpoint, None),
    ],
)
def test_target_strings(text, kind, where):
    ep = parse_target(MemoryReactorClock(), text, 3.0)
    assert type(ep) is kind
    if where is not None:
        assert (ep.host, ep.port, ep.timeout) == (*where, 3.0)
    if kind is FirstRefusedNext:
        assert [(e.host, e.port) for e in ep.endpoints] == [("127.0.0.1", 5905), ("::1", 5905)]
    if kind is UNIXClientEndpoint:
        assert ep._path == "/run/vnc.sock"


@pytest.mark.parametrize("text", ["nope", "tcp:", "tcp:host", "tcp:127.0.0.1:http", "tcp:127.0.0.1:70000",
                                  "tcp:a b:1", "unix:", "tcp:host=x", "bogus:thing"])
def test_bad_target_strings(text):
    with pytest.raises(TargetError):
        parse_target(MemoryReactorClock(), text, 3.0)


def test_first_refused_next_tries_the_next_endpoint_only_when_refused():
    class Ep:
        def __init__(self, outcome):
            self.outcome = outcome
            self.tried = 0

        def connect(self, factory):
            self.tried += 1
            return defer.fail(self.outcome()) if isinstance(self.outcome, type) else defer.succeed(self.outcome)

    refused, ok = Ep(error.ConnectionRefusedError), Ep("proto")
    assert FirstRefusedNext([refused, ok]).connect(None).result == "proto"
    timeout, never = Ep(error.TimeoutError), Ep("proto")
    failures = []
    FirstRefusedNext([timeout, never]).connect(None).addErrback(failures.append)
    assert failures[0].check(error.TimeoutError) and never.tried == 0


# -------------------------------------------------------------- token files


def test_token_lines():
    table = parse_token_lines(
        "# comment\n\nvnc1: 127.0.0.1:5901\n  vnc2 :  [::1]:5902  \nsock: unix_socket:/tmp/x.sock\n"
        "bad line\nbadport: host:99999\nv6: ::1:5903\n"
    )
    assert table == {
        "vnc1": Target("127.0.0.1", 5901),
        "vnc2": Target("::1", 5902),
        "sock": Target(path="/tmp/x.sock"),
        "v6": Target("::1", 5903),
    }


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_token_file_is_reread_when_changed_at_most_once_a_second(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("a: 127.0.0.1:1000\n")
    clock = Clock()
    table = TokenTable(str(path), now=clock)
    assert table.lookup("a") == Target("127.0.0.1", 1000)
    path.write_text("a: 127.0.0.1:2000\nb: unix_socket:/s\n")
    clock.now += 0.5
    assert table.lookup("a") == Target("127.0.0.1", 1000)  # not checked yet
    clock.now += 0.6
    assert table.lookup("a") == Target("127.0.0.1", 2000)
    assert table.lookup("b") == Target(path="/s")
    path.unlink()
    clock.now += 2
    assert table.lookup("b") == Target(path="/s")  # unreadable: the last good table stays


def test_token_directory_reads_every_file_and_sees_new_ones(tmp_path):
    (tmp_path / "one").write_text("a: 127.0.0.1:1\n")
    (tmp_path / ".hidden").write_text("h: 127.0.0.1:9\n")
    clock = Clock()
    table = TokenTable(str(tmp_path), now=clock)
    assert table.lookup("a") == Target("127.0.0.1", 1) and table.lookup("h") is None
    (tmp_path / "two").write_text("b: 127.0.0.1:2\n")
    clock.now += 1
    assert table.lookup("b") == Target("127.0.0.1", 2)
    (tmp_path / "one").unlink()
    clock.now += 1
    assert table.lookup("a") is None


# ------------------------------------------------------------------ --web


def test_web_root_lookups(tmp_path):
    (tmp_path / "index.html").write_text("<h1>hi</h1>")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "ui.js").write_text("x=1")
    (tmp_path / "app" / "a b.css").write_text("b{}")
    (tmp_path / ".secret").write_text("no")
    (tmp_path / "noindex").mkdir()
    web = WebRoot(str(tmp_path))
    found = web.resolve(b"")
    assert type(found) is FileFound and found.path.endswith("index.html") and found.ctype == b"text/html; charset=utf-8"
    assert web.resolve(b"app/ui.js").ctype == b"text/javascript; charset=utf-8"
    assert web.resolve(b"app/a%20b.css").ctype == b"text/css; charset=utf-8"
    assert type(web.resolve(b"app")) is NeedsSlash
    assert web.resolve(b"app/") is None  # no index.html there, no listing
    assert web.resolve(b"noindex/") is None
    assert web.resolve(b"missing.js") is None
    assert web.resolve(b".secret") is None
    assert web.resolve(b"app/%00x") is None
    assert web.resolve(b"%ff") is None
    assert read_small(found.path) == (200, b"<h1>hi</h1>", b"text/html; charset=utf-8")


# -------------------------------------------------------------- role router


def _req(raw: bytes):
    assert raw.endswith(b"\r\n\r\n")
    return parse_request_head(raw[:-2])


def _routing(tmp_path=None, tokens=None, base=b"/"):
    from cocalcproxy.roles.bridge import BridgeRouting

    clock = MemoryReactorClock()
    return BridgeRouting(clock, BridgeFactory(clock), base, endpoint=None if tokens else FakeEndpoint(),
                         tokens=tokens, web=WebRoot(str(tmp_path)) if tmp_path else None)


def test_router_without_web(tmp_path):
    r = _routing()
    assert type(r.route(_req(upgrade_head(b"/any/path?x")))) is Handoff
    assert r.route(_req(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")) == Local("healthz")
    route = r.route(_req(b"GET /vnc.html HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert type(route) is Handoff and route.route == "local"
    ct = client_transport()
    route.start(ct, b"")
    assert ct.value().startswith(b"HTTP/1.1 405 ")
    assert b"\r\nAllow: GET\r\n" in ct.value() and ct.disconnecting
    assert type(r.route(_req(upgrade_head(b"/a/../b")))) is Reject


def test_router_with_web(tmp_path):
    (tmp_path / "vnc.html").write_text("novnc")
    (tmp_path / "core").mkdir()
    (tmp_path / "big.bin").write_bytes(b"\0" * (1024 * 1024 + 1))
    r = _routing(tmp_path, base=b"/desk/")
    route = r.route(_req(b"GET /desk/vnc.html HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert type(route) is Local and r.local_page(route, None) == (200, b"novnc", b"text/html; charset=utf-8")
    assert r.route(_req(b"GET /desk/core?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")) == Redirect(b"/desk/core/?x=1")
    assert r.route(_req(b"GET /desk/nope HTTP/1.1\r\nHost: h\r\n\r\n")).status == 404
    assert r.route(_req(b"GET /vnc.html HTTP/1.1\r\nHost: h\r\n\r\n")).status == 404  # outside the base
    assert r.route(_req(b"GET /desk/healthz HTTP/1.1\r\nHost: h\r\n\r\n")) == Local("healthz")
    post = r.route(_req(b"POST /desk/vnc.html HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"))
    ct = client_transport()
    post.start(ct, b"")
    assert ct.value().startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET, HEAD\r\n" in ct.value()
    big = r.route(_req(b"HEAD /desk/big.bin HTTP/1.1\r\nHost: h\r\n\r\n"))
    ct = client_transport()
    big.start(ct, b"")
    assert ct.value().startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 1048577\r\n" in ct.value()
    assert ct.value().endswith(b"\r\n\r\n") and ct.disconnecting


def test_an_empty_segment_after_the_base_is_404_never_a_redirect_off_site(tmp_path):
    (tmp_path / "evil.com").mkdir()
    r = _routing(tmp_path)
    assert r.route(_req(b"GET /evil.com HTTP/1.1\r\nHost: h\r\n\r\n")) == Redirect(b"/evil.com/")
    assert r.route(_req(b"GET //evil.com HTTP/1.1\r\nHost: h\r\n\r\n")).status == 404  # not Location: //evil.com/
    assert r.route(_req(b"GET //evil.com/ HTTP/1.1\r\nHost: h\r\n\r\n")).status == 404


def test_a_large_file_that_grows_while_streamed_is_cut_at_its_content_length(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * (2 * 1024 * 1024))
    r = _routing(tmp_path)
    route = r.route(_req(b"GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n"))
    ct = client_transport()
    route.start(ct, b"")
    with open(path, "ab") as f:
        f.write(b"b" * 500_000)  # appended after the head (Content-Length) was sent
    for _ in range(10):
        r.reactor.advance(0)
    head, _, body = ct.value().partition(b"\r\n\r\n")
    assert b"Content-Length: 2097152" in head
    assert body == b"a" * (2 * 1024 * 1024) and ct.disconnecting


def test_router_with_tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("vnc: 127.0.0.1:5901\nsock: unix_socket:/tmp/s\n")
    r = _routing(tokens=TokenTable(str(path)))
    assert r.route(_req(upgrade_head(b"/"))).status == 404
    assert r.route(_req(upgrade_head(b"/?token=other"))).status == 404
    route = r.route(_req(upgrade_head(b"/websockify?token=vnc")))
    assert type(route) is Handoff
    assert r._endpoint(Target("127.0.0.1", 5901)) is r._endpoint(Target("127.0.0.1", 5901))
    assert type(r._endpoint(Target(path="/tmp/s"))) is UNIXClientEndpoint


# ------------------------------------------------------------------ options


def _options(*args):
    from cocalcproxy.roles.bridge import Options

    o = Options()
    o.parseOptions(list(args))
    return o


def test_options(tmp_path):
    o = _options("--target", "tcp:[::1]:5900")
    assert o["listen"] == ["tcp:6080"] and o["trusted-proxy"] == []
    assert type(o["target-endpoint"]) is FastTCPClientEndpoint and o["target-endpoint"].host == "::1"
    (tmp_path / "t").write_text("a: 127.0.0.1:1\n")
    assert _options("--token-file", str(tmp_path / "t"))["token-table"].lookup("a") == Target("127.0.0.1", 1)
    for args, message in [
        ((), "exactly one of --target and --token-file"),
        (("--target", "tcp:a:1", "--token-file", str(tmp_path / "t")), "exactly one"),
        (("--target", "tcp:127.0.0.1:x"), "--target"),
        (("--token-file", str(tmp_path / "missing")), "--token-file"),
        (("--target", "tcp:127.0.0.1:1", "--web", str(tmp_path / "missing")), "--web"),
    ]:
        with pytest.raises(usage.UsageError, match=message):
            _options(*args)
