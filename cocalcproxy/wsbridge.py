"""WebSocket ↔ raw TCP bridge: Autobahn terminates the WebSocket, we splice bytes.

The only module that imports Autobahn.  Our HTTP front reads and routes the
request head; for a bridge route it hands the connection over (``Handoff``)
with the raw bytes read so far, and ``start`` replays them into a
``BridgeProtocol`` (STYLE §3.6): Autobahn re-parses the head, answers 101 and
from then on owns the framing.  Why not Autobahn's ``WrappingWebSocketServerFactory``:
it refuses clients that offer no subprotocol (modern noVNC), builds the inner
protocol before the handshake, collects whole messages and offers no producer
for backpressure (STYLE §1.5, E4).

Behaviour (SPEC §7, websockify's rules):

- subprotocol ``binary`` if offered, else ``base64`` if offered, else none;
- client → target: frame payloads are written to the target *as they arrive*
  (never a whole message collected); text messages go as their UTF-8 bytes,
  in ``base64`` mode they are decoded;
- target → client: each read becomes one binary message (base64 text in
  ``base64`` mode), fragmented at 64 KiB;
- backpressure: the raw client transport and the target transport are each
  other's streaming producers, through ``PauseGate``s;
- the target is connected when the WebSocket opens; until then the client is
  paused (``CONNECTING``) and frames already received wait in a list bounded by
  one socket read;
- target EOF → close 1000 "Target closed" after the data before it;
  connect failure → close 1011; client close → bytes already received are
  written, then the target is shut; no compression.
"""

from __future__ import annotations

import base64
import binascii
import struct

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import defer
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from .net.fasttcp import set_nodelay
from .net.gate import BACKPRESSURE, CONNECTING, PauseGate, unregister

log = Logger()

#: Largest WebSocket message (and frame) a client may send; frames are streamed,
#: so this bounds a peer's claims, not our memory.
MAX_MESSAGE = 16 * 1024 * 1024
#: Outgoing messages are cut into frames of this size.
FRAGMENT_SIZE = 64 * 1024

_OPEN = WebSocketServerProtocol.STATE_OPEN

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_DATA = 1007
CLOSE_INTERNAL_ERROR = 1011


def _frame_header(b0: int, n: int) -> bytes:
    """An unmasked frame header: FIN/opcode byte ``b0``, payload length ``n``."""
    if n < 126:
        return _HEAD_SHORT(b0, n)
    if n < 65536:
        return _HEAD_16(b0, 126, n)
    return _HEAD_64(b0, 127, n)


_HEAD_SHORT = struct.Struct("!BB").pack
_HEAD_16 = struct.Struct("!BBH").pack
_HEAD_64 = struct.Struct("!BBQ").pack


class _Call:
    """A reactor delayed call whose ``cancel`` may be repeated."""

    __slots__ = ("call",)

    def __init__(self, call) -> None:
        self.call = call

    def cancel(self) -> None:
        if self.call.active():
            self.call.cancel()


class _ReactorTimer:
    """Autobahn's timers on *our* reactor: its default batched timer schedules
    on txaio's global loop, whatever ``reactor=`` the factory was given."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor

    def call_later(self, delay, func, *args, **kwargs) -> _Call:
        return _Call(self.reactor.callLater(delay, func, *args, **kwargs))


@implementer(IHalfCloseableProtocol)
class _TargetProtocol(Protocol):
    """The raw TCP / unix-socket connection to the target."""

    def __init__(self, bridge: "BridgeProtocol") -> None:
        self.bridge = bridge

    def connectionMade(self) -> None:
        set_nodelay(self.transport)  # each write is a whole message: never wait for Nagle

    def dataReceived(self, data: bytes) -> None:
        bridge = self.bridge
        if bridge is not None:
            bridge.target_data(data)

    def readConnectionLost(self) -> None:
        bridge = self.bridge
        if bridge is not None:
            bridge.target_eof()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason=None) -> None:
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.target_lost()


class _TargetFactory(Factory):
    noisy = False

    def __init__(self, bridge: "BridgeProtocol") -> None:
        self.bridge = bridge

    def buildProtocol(self, addr):
        return _TargetProtocol(self.bridge)


@implementer(IHalfCloseableProtocol)
class BridgeProtocol(WebSocketServerProtocol):
    """One WebSocket client spliced to one target connection."""

    endpoint = None  # IStreamClientEndpoint of the target, set by BridgeFactory.start
    activity = None  # optional no-argument hook called as data passes (--activity-file)
    b64 = False  # base64 subprotocol: text messages carry base64 both ways
    target: _TargetProtocol | None = None
    connect_d = None
    client_gate: PauseGate | None = None
    target_gate: PauseGate | None = None
    client_gone = False
    pending: list | None = None  # client bytes received while the target connects
    b64_rest = b""
    broken = False  # we are closing because of bad input: forward nothing more

    # ------------------------------------------------------------ transport
    def dataReceived(self, data: bytes) -> None:
        # Autobahn's adapter formats debug-log arguments on every read; skip it.
        self._dataReceived(data)

    def readConnectionLost(self) -> None:
        """The client sent FIN without a closing handshake: the WebSocket is over."""
        unregister(self.transport)
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason=None) -> None:
        call, self.closeHandshakeTimeoutCall = getattr(self, "closeHandshakeTimeoutCall", None), None
        if call is not None:
            call.cancel()
        super().connectionLost(reason)
        self._client_closed()

    def unregisterProducer(self) -> None:
        unregister(self.transport)  # Autobahn calls this even when none is registered

    def _closeConnection(self, abort: bool = False) -> None:
        # A registered producer keeps a TLS transport open on loseConnection (STYLE §3.2).
        unregister(self.transport)
        super()._closeConnection(abort)

    # ------------------------------------------------------------ handshake
    def onConnect(self, request):
        offered = request.protocols
        if "binary" in offered:
            return "binary"
        if "base64" in offered:
            self.b64 = True
            return "base64"
        return None

    def onOpen(self) -> None:
        self.client_gate = gate = PauseGate(self.transport)
        gate.pause(CONNECTING)
        self.pending = []
        d = self.connect_d = defer.maybeDeferred(self.endpoint.connect, _TargetFactory(self))
        d.addCallbacks(self._target_connected, self._target_failed)

    def _target_connected(self, target: _TargetProtocol) -> None:
        self.connect_d = None
        self.target = target
        ttransport = target.transport
        pending, self.pending = self.pending, None
        if pending:
            ttransport.write(b"".join(pending))
        if self.client_gone:
            target.bridge = None
            ttransport.loseConnection()
            self.target = None
            return
        self.target_gate = PauseGate(ttransport)
        # The client socket's buffer throttles target reads and vice versa.
        unregister(self.transport)
        self.transport.registerProducer(self.target_gate, True)
        ttransport.registerProducer(self.client_gate, True)
        self.client_gate.resume(CONNECTING)

    def _target_failed(self, failure) -> None:
        self.connect_d = None
        self.pending = None
        if self.client_gone:
            return
        log.info("bridge target {endpoint!r} unreachable: {error}", endpoint=self.endpoint,
                 error=failure.getErrorMessage())
        self.client_gate.resume(CONNECTING)
        self._close(CLOSE_INTERNAL_ERROR, "Failed to connect to downstream server")

    # --------------------------------------------------------- client → target
    def onMessageFrameData(self, payload: bytes) -> None:
        """Each piece of a frame's payload goes to the target as it arrives."""
        if self.failedByMe or self.broken:
            return
        if self.activity is not None:
            self.activity()
        if self.b64 and not self.message_is_binary:
            payload = self._b64_decode(payload, final=False)
        if payload:
            self._to_target(payload)

    def onMessageFrameEnd(self) -> None:
        pass  # nothing collected, nothing to assemble

    def onMessageEnd(self) -> None:
        if self.b64_rest and not (self.failedByMe or self.broken):
            payload = self._b64_decode(b"", final=True)
            if payload:
                self._to_target(payload)

    def _to_target(self, payload: bytes) -> None:
        target = self.target
        if target is not None:
            target.transport.write(payload)
        elif self.pending is not None:
            self.pending.append(payload)

    def _b64_decode(self, chunk: bytes, final: bool) -> bytes:
        """Decode base64 text that may be split anywhere between frames."""
        data = self.b64_rest + chunk
        cut = len(data) if final else len(data) - len(data) % 4
        self.b64_rest = data[cut:]
        try:
            return base64.b64decode(data[:cut], validate=True)
        except (binascii.Error, ValueError):
            self.b64_rest = b""
            self.broken = True
            self._close(CLOSE_INVALID_DATA, "Invalid base64 data")
            return b""

    # --------------------------------------------------------- target → client
    def target_data(self, data: bytes) -> None:
        if self.state != _OPEN:
            return
        if self.activity is not None:
            self.activity()
        if self.b64:
            self._send_message(base64.b64encode(data), 1)
        else:
            self._send_message(data, 2)

    def _send_message(self, data: bytes, opcode: int) -> None:
        """One message in frames of at most ``FRAGMENT_SIZE``, written with one
        ``write`` (Autobahn's ``sendMessage`` copies twice and writes per frame).
        Server frames are unmasked and we never compress, so this is all there is."""
        n = len(data)
        if n <= FRAGMENT_SIZE:
            self.transport.write(_frame_header(0x80 | opcode, n) + data)
            return
        view = memoryview(data)
        parts = []
        for start in range(0, n, FRAGMENT_SIZE):
            chunk = view[start:start + FRAGMENT_SIZE]
            fin = 0x80 if start + FRAGMENT_SIZE >= n else 0
            parts.append(_frame_header(fin | (opcode if start == 0 else 0), len(chunk)))
            parts.append(chunk)
        self.transport.write(b"".join(parts))

    def sendData(self, data: bytes, sync: bool = False, chopsize=None) -> None:
        # Autobahn's version formats debug-log arguments for every write.
        if sync or chopsize or self.send_queue:
            super().sendData(data, sync, chopsize)
        else:
            self.transport.write(data)

    def target_eof(self) -> None:
        """Target sent FIN: everything it sent is already queued to the client."""
        self._close(CLOSE_NORMAL, "Target closed")

    def target_lost(self) -> None:
        target, self.target = self.target, None
        if target is not None:
            unregister(self.transport)
            if self.client_gate is not None:
                self.client_gate.resume(BACKPRESSURE)  # read the client's close reply
        self._close(CLOSE_NORMAL, "Target closed")

    # ---------------------------------------------------------------- close
    def _close(self, code: int, reason: str) -> None:
        if self.state == _OPEN:
            # sendClose() refuses 1011/1007: send the frame ourselves.
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8"), isReply=False)

    def _client_closed(self) -> None:
        """The client connection is gone: flush what we have to the target, then shut it."""
        if self.client_gone:
            return
        self.client_gone = True
        target, self.target = self.target, None
        if target is not None:
            target.bridge = None
            ttransport = target.transport
            unregister(ttransport)
            ttransport.loseConnection()  # sends what is buffered first
        if self.connect_d is not None and not self.pending:
            d, self.connect_d = self.connect_d, None
            d.cancel()

    def begin_drain(self) -> None:
        """The process is stopping: tell the client we are going away."""
        self._close(CLOSE_GOING_AWAY, "Server shutting down")


class BridgeFactory(WebSocketServerFactory):
    """Autobahn's factory for bridge connections, built once per role or server.

    ``starter(endpoint)`` returns the ``Handoff`` start callable for one target.
    """

    protocol = BridgeProtocol
    noisy = False

    def __init__(self, reactor, *, max_message: int = MAX_MESSAGE) -> None:
        super().__init__(reactor=reactor, server="cocalcproxy")
        self._batched_timer = _ReactorTimer(reactor)
        self.setProtocolOptions(
            autoFragmentSize=FRAGMENT_SIZE,
            maxFramePayloadSize=max_message,
            maxMessagePayloadSize=max_message,
            failByDrop=False,
            webStatus=False,
            openHandshakeTimeout=0,  # the head is complete when we hand over
            closeHandshakeTimeout=5,
            perMessageCompressionAccept=lambda offers: None,
        )

    def starter(self, endpoint, activity=None):
        """``start(transport, raw) -> protocol`` bridging to ``endpoint``; ``activity``
        (no arguments) is called whenever data passes, if given."""

        def start(transport, raw: bytes) -> BridgeProtocol:
            proto = self.buildProtocol(transport.getPeer())
            proto.endpoint = endpoint
            proto.activity = activity
            proto.makeConnection(transport)
            proto.dataReceived(raw)
            return proto

        return start


def bridge_start(reactor, endpoint, *, max_message: int = MAX_MESSAGE, activity=None):
    """A ``Handoff`` start callable bridging WebSocket clients to ``endpoint``
    (an ``IStreamClientEndpoint``), connected when each WebSocket opens.

    ``activity``, if given, is called with no arguments whenever data passes
    either way (the project role's ``--activity-file``; it should rate-limit).
    Call it once per target and keep the result: it builds the Autobahn factory.
    """
    return BridgeFactory(reactor, max_message=max_message).starter(endpoint, activity)


__all__ = ["BridgeFactory", "BridgeProtocol", "bridge_start", "MAX_MESSAGE"]
