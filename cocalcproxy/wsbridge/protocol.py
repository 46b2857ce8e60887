"""WebSocket ↔ raw TCP bridge: Autobahn terminates the WebSocket, the relay splices bytes.

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
- client → target: frame payloads go to the target *as they arrive* (never a
  whole message collected); text messages as their UTF-8 bytes, decoded in
  ``base64`` mode;
- target → client: each read becomes one binary message (base64 text in
  ``base64`` mode), fragmented at 64 KiB;
- the target is connected when the WebSocket opens; until then the client is
  paused (``CONNECTING``) and frames already received wait in a list bounded
  by one socket read;
- the splice, its backpressure and its close are ``net.relay``'s: target EOF →
  everything it sent, then close 1000 "Target closed", and what the client
  still sends reaches the target; client close → everything already received
  is written to the target, then the target gets a FIN and is read until it
  closes; target connect failure → close 1011.  No compression.

Autobahn's private names used (a faster data path, our reactor for its timers)
are looked up once: if a release renames them, ``_FAST`` turns false and the
public behaviour is used instead.
"""

from __future__ import annotations

import base64

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import Logger
from zope.interface import implementer

from ..net.connect import connect_target
from ..net.gate import CONNECTING, PauseGate, unregister
from ..net.relay import LINGER_TIMEOUT, Relay, RelayedStream, Side
from .frames import FRAGMENT_SIZE, OP_BINARY, OP_TEXT, Base64Decoder, message_bytes

log = Logger()

#: Largest WebSocket message (and frame) a client may send; frames are streamed,
#: so this bounds a peer's claims, not our memory.
MAX_MESSAGE = 16 * 1024 * 1024

_OPEN = WebSocketServerProtocol.STATE_OPEN
#: Autobahn internals we use when they are there (see the module docstring).
_FAST = all(hasattr(WebSocketServerProtocol, n) for n in ("_dataReceived", "_closeConnection"))

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_DATA = 1007
CLOSE_INTERNAL_ERROR = 1011


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


class WebSocketSide(Side):
    """The client of a bridge, as the relay sees it: bytes become messages,
    EOF is a close frame."""

    __slots__ = ("ws",)

    def __init__(self, ws: "BridgeProtocol", gate: PauseGate) -> None:
        super().__init__(ws.transport, gate, "client")
        self.ws = ws

    def write(self, data: bytes) -> None:
        self.ws.send_bytes(data)

    def finish(self) -> None:
        self.ws.close_with(CLOSE_NORMAL, "Target closed")
        self.fin_sent = True

    def close(self) -> None:
        self.ws.dropConnection(abort=False)

    def abort(self) -> None:
        self.ws.dropConnection(abort=True)


@implementer(IHalfCloseableProtocol)
class BridgeProtocol(WebSocketServerProtocol):
    """One WebSocket client spliced to one target connection."""

    target = None  # routing.addresses.Address or an IStreamClientEndpoint, set by BridgeFactory
    activity = None  # optional no-argument hook called as data passes (--activity-file)
    b64: Base64Decoder | None = None  # base64 subprotocol: text messages carry base64 both ways
    binary_message = True
    relay: Relay | None = None
    side: WebSocketSide | None = None
    connect_d = None
    client_gate: PauseGate | None = None
    client_gone = False
    pending: list | None = None  # client bytes received while the target connects
    broken = False  # we are closing because of bad input: forward nothing more

    # ------------------------------------------------------------ transport
    def dataReceived(self, data: bytes) -> None:
        if _FAST:
            self._dataReceived(data)  # Autobahn's adapter formats debug-log arguments on every read
        else:
            super().dataReceived(data)

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

    def dropConnection(self, abort: bool = False) -> None:
        # Autobahn aborts (RST) when the client answers our close; after a clean
        # closing handshake nothing more comes from the client, so close with a
        # FIN instead: what we wrote last is never discarded.
        super().dropConnection(abort=abort and not getattr(self, "wasClean", False))

    if _FAST:
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
            self.b64 = Base64Decoder()
            return "base64"
        return None

    def onOpen(self) -> None:
        self.client_gate = gate = PauseGate(self.transport)
        gate.pause(CONNECTING)
        self.pending = []
        factory = self.factory
        d = self.connect_d = connect_target(factory.reactor, self.target, RelayedStream, factory.connect_timeout)
        d.addCallbacks(self._target_connected, self._target_failed)

    def _target_connected(self, target: RelayedStream) -> None:
        self.connect_d = None
        side = self.side = WebSocketSide(self, self.client_gate)
        tside = target.side = Side(target.transport, PauseGate(target.transport), "target")
        self.relay = relay = Relay(self.factory.reactor, side, tside, linger=self.factory.linger,
                                   on_data=self._activity if self.activity is not None else None)
        relay.start()
        pending, self.pending = self.pending, None
        if pending:
            relay.received(side, b"".join(pending))
        self.client_gate.resume(CONNECTING)
        if self.client_gone:
            relay.lost(side)

    def _target_failed(self, failure) -> None:
        self.connect_d = None
        self.pending = None
        if self.client_gone:
            return
        log.info("bridge target {target} unreachable: {error}", target=self.target, error=failure.getErrorMessage())
        self.client_gate.resume(CONNECTING)
        self.close_with(CLOSE_INTERNAL_ERROR, "Failed to connect to downstream server")

    def _activity(self, side, n: int) -> None:
        self.activity()

    # --------------------------------------------------------- client → target
    def onMessageBegin(self, isBinary: bool) -> None:
        super().onMessageBegin(isBinary)
        self.binary_message = isBinary

    def onMessageFrameData(self, payload: bytes) -> None:
        """Each piece of a frame's payload goes to the target as it arrives."""
        if self.broken or getattr(self, "failedByMe", False):
            return
        if self.b64 is not None and not self.binary_message:
            payload = self._b64_decode(payload, final=False)
        if payload:
            self._to_target(payload)

    def onMessageFrameEnd(self) -> None:
        pass  # nothing collected, nothing to assemble

    def onMessageEnd(self) -> None:
        if self.b64 is not None and self.b64.rest and not self.broken:
            payload = self._b64_decode(b"", final=True)
            if payload:
                self._to_target(payload)

    def _to_target(self, payload: bytes) -> None:
        relay = self.relay
        if relay is not None:
            relay.received(self.side, payload)
        elif self.pending is not None:
            self.pending.append(payload)

    def _b64_decode(self, chunk: bytes, final: bool) -> bytes:
        try:
            return self.b64.feed(chunk, final)
        except ValueError:
            self.broken = True
            self.close_with(CLOSE_INVALID_DATA, "Invalid base64 data")
            return b""

    # --------------------------------------------------------- target → client
    def send_bytes(self, data: bytes) -> None:
        """Target bytes as one message (see ``frames.message_bytes``)."""
        if self.state != _OPEN:
            return  # the client closed meanwhile: nothing may follow its close
        if self.b64 is not None:
            self.transport.write(message_bytes(base64.b64encode(data), OP_TEXT))
        else:
            self.transport.write(message_bytes(data, OP_BINARY))

    # ---------------------------------------------------------------- close
    def close_with(self, code: int, reason: str) -> None:
        if self.state == _OPEN:
            # sendClose() refuses 1011/1007: send the frame ourselves.
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8"), isReply=False)

    def _client_closed(self) -> None:
        """The client connection is gone: the relay flushes to the target and closes it."""
        if self.client_gone:
            return
        self.client_gone = True
        if self.relay is not None:
            self.relay.lost(self.side)
        elif self.connect_d is not None and not self.pending:
            d, self.connect_d = self.connect_d, None
            d.cancel()

    def begin_drain(self) -> None:
        """The process is stopping: tell the client we are going away."""
        self.close_with(CLOSE_GOING_AWAY, "Server shutting down")


class BridgeFactory(WebSocketServerFactory):
    """Autobahn's factory for bridge connections, built once per role or server.

    ``starter(target)`` returns the ``Handoff`` start callable for one target.
    """

    protocol = BridgeProtocol
    noisy = False

    def __init__(self, reactor, *, max_message: int = MAX_MESSAGE, connect_timeout: float = 10.0,
                 linger: float = LINGER_TIMEOUT) -> None:
        super().__init__(reactor=reactor, server="cocalcproxy")
        self.reactor = reactor
        self.connect_timeout = connect_timeout
        self.linger = linger
        if hasattr(self, "_batched_timer"):
            self._batched_timer = _ReactorTimer(reactor)
        self.setProtocolOptions(
            autoFragmentSize=FRAGMENT_SIZE,
            maxFramePayloadSize=max_message,
            maxMessagePayloadSize=max_message,
            failByDrop=False,
            webStatus=False,
            openHandshakeTimeout=0,  # the head is complete when we hand over
            # the client may still be reading what came before our close frame
            closeHandshakeTimeout=linger,
            perMessageCompressionAccept=lambda offers: None,
        )

    def starter(self, target, activity=None):
        """``start(transport, raw) -> protocol`` bridging to ``target`` (an
        ``Address`` or endpoint); ``activity`` (no arguments) is called whenever
        data passes, if given."""

        def start(transport, raw: bytes) -> BridgeProtocol:
            proto = self.buildProtocol(transport.getPeer())
            proto.target = target
            proto.activity = activity
            proto.makeConnection(transport)
            proto.dataReceived(raw)
            return proto

        return start


__all__ = ["BridgeFactory", "BridgeProtocol", "MAX_MESSAGE"]
