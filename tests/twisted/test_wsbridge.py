"""The WebSocket ↔ raw TCP bridge on fake transports and a fake clock (no sockets).

Client frames are built by hand (masked, as a browser sends them) and the
server's frames parsed back from the client transport, so every byte the bridge
writes is checked: handshake and subprotocol choice, what reaches the target
and when, producer wiring, close codes, the lingering close and timers.  The
bridge role's pure parts are in ``tests/unit/test_bridge_role.py``.
"""

from __future__ import annotations

import base64
import os
import struct

import pytest
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from cocalcproxy import limits
from cocalcproxy.net.gate import CONNECTING
from cocalcproxy.proxy.factory import ProxyConfig, ProxyFactory
from cocalcproxy.proxy.tracker import ConnectionTracker
from cocalcproxy.routing.types import Handoff
from cocalcproxy.wsbridge import BridgeFactory, BridgeProtocol
from tests.support.results import recorded

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
        self.results: list[list] = []  # what each connect's Deferred fired with, as the bridge saw it

    def connect(self, factory):
        d = defer.Deferred()
        self.connects.append((factory, d))
        self.results.append(recorded(d))
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
    target_gate = b.proto.relay.b.gate
    assert b.ct.producer is target_gate and target_gate.transport is tt
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


def test_starter_builds_a_handoff_start_callable():
    clock = MemoryReactorClock()
    endpoint = FakeEndpoint()
    seen = []
    start = BridgeFactory(clock, max_message=1 << 20).starter(endpoint, activity=lambda: seen.append(1))
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
    assert tt.disconnecting and tt.producer is None  # it sent EOF: nothing more can come, close now
    target.connectionLost(Failure(error.ConnectionDone()))
    assert b.clock.getDelayedCalls() == []


def test_client_frames_after_our_close_still_reach_the_target():
    """Target EOF → close frame; what the client sent before it saw our close goes on."""
    b = Bridge()
    target, tt = b.connect()
    target.readConnectionLost()
    b.frames()
    b.send(frame(2, b"in flight"))
    assert tt.value() == b"in flight"


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


def test_client_close_flushes_pending_bytes_then_half_closes_and_drains_the_target():
    """The fix for the lost-bytes report: the target gets a FIN after every byte,
    its echo is read and dropped until it closes — never a close with unread
    input (the kernel would answer RST and the target lose what it had not read)."""
    b = Bridge()
    target, tt = b.connect()
    tt.producer.pauseProducing()  # the target is slow: its socket buffer is full...
    b.ct.producer.pauseProducing()  # ...and the client stopped reading our echo
    assert tt.producerState == "paused"
    b.send(frame(2, b"goodbye") + close_frame(1000))
    assert tt.value() == b"goodbye"
    (_, op, payload), = b.frames()
    assert op == 8 and close_code(payload)[0] == 1000  # the closing handshake reply
    assert b.ct.disconnecting
    b.proto.connectionLost(Failure(error.ConnectionDone()))
    assert tt.write_closed and not tt.disconnecting and tt.producer is None
    assert tt.producerState == "producing"  # we read (and drop) what it still sends
    target.dataReceived(b"echo nobody reads")
    assert b.ct.value() == b""
    target.readConnectionLost()  # its EOF: nothing unread on our side, close
    assert tt.disconnecting
    target.connectionLost(Failure(error.ConnectionDone()))
    assert b.clock.getDelayedCalls() == []


def test_a_target_that_never_closes_is_closed_after_the_linger_timeout():
    b = Bridge()
    target, tt = b.connect()
    b.send(close_frame(1000))
    b.proto.connectionLost(Failure(error.ConnectionDone()))
    assert tt.write_closed and not tt.disconnecting
    b.clock.advance(limits.RELAY_FLUSH_TIMEOUT - 1)  # our FIN is not out yet: the flush bound applies
    target.writeConnectionLost()  # now it is: the (shorter) linger applies from here
    b.clock.advance(limits.RELAY_LINGER - 1)
    target.dataReceived(b"still talking")  # each byte from it restarts the wait
    b.clock.advance(limits.RELAY_LINGER - 1)
    assert not tt.disconnecting
    b.clock.advance(2)
    assert tt.disconnecting and not tt.aborted


def test_client_gone_while_connecting_with_data_delivers_it_then_closes():
    b = Bridge()
    b.send(frame(2, b"fire and forget"))
    b.proto.connectionLost(Failure(error.ConnectionLost()))
    target, tt = b.connect()
    assert tt.value() == b"fire and forget" and tt.write_closed
    target.readConnectionLost()
    assert tt.disconnecting


def test_client_gone_while_connecting_without_data_cancels_the_connect():
    b = Bridge()
    b.proto.connectionLost(Failure(error.ConnectionLost()))
    [result] = b.endpoint.results[0]  # cancelled: the bridge got CancelledError (and handled it)
    assert isinstance(result, Failure) and result.check(defer.CancelledError)
    assert b.proto.connect_d is None
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
    b.clock.advance(limits.RELAY_LINGER - 1)
    assert not b.ct.aborted  # a slow client may still be reading what came before our close
    b.clock.advance(1)
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
    start = BridgeFactory(clock).starter(endpoint)
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
    assert tt.write_closed and not tracker.connections
    target.readConnectionLost()
    target.connectionLost(Failure(error.ConnectionDone()))
    assert tt.disconnecting and clock.getDelayedCalls() == []
