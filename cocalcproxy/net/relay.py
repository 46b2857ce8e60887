"""The relay: two connections spliced into one byte stream each way, closed
without losing a byte.  Shared by the HTTP tunnel (after a 101) and the
WebSocket ↔ TCP bridge (where one side speaks WebSocket frames).

Flow: each side's bytes are written to the other as they arrive, and each
transport is registered as the streaming producer of the other's writes
(through ``PauseGate``s), so a full buffer on one side stops the socket reads
on the other — portforward's wiring, no queue of ours (STYLE §2.5).

Closing, the part that loses data when done naively:

- A sends EOF (a TCP FIN): A's gate is unregistered from B's transport and B is
  *finished* — EOF after everything already written (FIN on TCP, close_notify
  on TLS, a close frame on WebSocket).  B → A keeps flowing.
- both sent EOF: both connections close (after our last writes); neither can
  send anything more, so nothing is left unread and the kernel closes them
  cleanly.
- A is lost (it can neither send nor receive: a WebSocket close, a reset, a
  TLS close): B is finished the same way, and what B still sends is read and
  dropped until B closes, or ``linger`` seconds pass without a byte from B
  once its FIN has gone out (``flush_timeout`` while our writes to it are
  still draining).  Then B is closed.

Why the lingering read: a socket closed while input is still unread makes the
kernel answer RST instead of FIN, and on RST the peer's kernel throws away what
its application had not read yet — the bytes we had just written.  nginx's
``lingering_close`` exists for the same reason.

Only the gates pause and resume transports; this module registers and
unregisters producers and tells the gates when a consumer went away.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IHalfCloseableProtocol, ISSLTransport
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from .. import limits
from .connect import Outbound
from .fasttcp import set_nodelay
from .gate import BACKPRESSURE, PauseGate, unregister

log = Logger()

#: Seconds a finished connection may stay silent before it is closed.
LINGER_TIMEOUT = limits.RELAY_LINGER
#: Seconds our last writes to a connection may take to drain once its peer is gone.
FLUSH_TIMEOUT = limits.RELAY_FLUSH_TIMEOUT


def is_tls(transport) -> bool:
    """TLS transports cannot half-close (``TLSMemoryBIOProtocol`` forwards
    ``loseWriteConnection`` to the raw socket: a bare FIN the TLS peer sees as
    an unclean loss, STYLE E10)."""
    return isinstance(transport, TLSMemoryBIOProtocol) or ISSLTransport.providedBy(transport)


class Side:
    """One connection of a relay: a raw TCP, unix-socket or TLS stream.

    Subclasses change how bytes are written and how EOF is sent (the bridge's
    WebSocket side sends messages and a close frame).  ``gate`` pauses this
    side's reading; ``transport`` is the consumer the other side's gate is
    registered with.
    """

    __slots__ = ("transport", "gate", "name", "eof", "gone", "finished", "fin_sent", "relay")

    def __init__(self, transport, gate: PauseGate, name: str = "") -> None:
        self.transport = transport
        self.gate = gate
        self.name = name
        self.eof = False  # it sent EOF: no more bytes from it
        self.gone = False  # the connection is lost
        self.finished = False  # we sent (or are sending) it EOF
        self.fin_sent = False  # our EOF has left (everything before it was written out)
        self.relay: Relay | None = None

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def finish(self) -> None:
        """EOF to this connection's peer once what was written has gone out."""
        transport = self.transport
        unregister(transport)  # a paused producer would hold the FIN back (STYLE §3.3)
        if is_tls(transport) or not hasattr(transport, "loseWriteConnection"):
            # close_notify; the TLS layer keeps delivering what the peer still
            # sends until the peer closes too
            transport.loseConnection()
            self.fin_sent = True
        else:
            transport.loseWriteConnection()  # writeConnectionLost follows once it is out

    def close(self) -> None:
        transport = self.transport
        unregister(transport)
        if transport.disconnecting and is_tls(transport):
            # a TLS close already under way waits for the peer's close_notify:
            # when the peer never sends it, cut the connection
            transport.abortConnection()
        else:
            transport.loseConnection()

    def abort(self) -> None:
        unregister(self.transport)
        self.transport.abortConnection()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Relay:
    """Splices side ``a`` and side ``b``; the protocols report their events here."""

    def __init__(self, clock, a: Side, b: Side, *, linger: float = LINGER_TIMEOUT,
                 flush_timeout: float = FLUSH_TIMEOUT, on_data: Callable[[Side, int], None] | None = None,
                 on_closed: Callable[[], None] | None = None) -> None:
        self.clock = clock
        self.a = a
        self.b = b
        a.relay = b.relay = self
        self.linger = linger
        self.flush_timeout = flush_timeout
        self.on_data = on_data  # (side the bytes came from, how many)
        self.on_closed = on_closed
        self.timer = None
        self.closed = False

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a

    def start(self) -> None:
        """Wire the producers: each transport's buffer throttles the other's reads."""
        a, b = self.a, self.b
        unregister(a.transport)
        unregister(b.transport)
        a.transport.registerProducer(b.gate, True)
        b.transport.registerProducer(a.gate, True)

    # ------------------------------------------------------------- events
    def received(self, side: Side, data: bytes) -> None:
        other = self.b if side is self.a else self.a
        if other.finished or other.gone:
            # Nobody can take these any more: drop them, and keep reading so the
            # connection can close cleanly (see the module docstring).
            self._arm(side)
            return
        other.write(data)
        if self.on_data is not None:
            self.on_data(side, len(data))

    def read_ended(self, side: Side) -> None:
        """``side`` sent EOF; it may still receive."""
        if side.eof:
            return
        side.eof = True
        self._finish(self.other(side))
        self._settle()

    def write_closed(self, side: Side) -> None:
        """Our EOF to ``side`` has gone out (TCP ``writeConnectionLost``)."""
        side.fin_sent = True
        self._settle()

    def lost(self, side: Side) -> None:
        """``side``'s connection is gone: nothing more to or from it."""
        if side.gone:
            return
        side.gone = side.eof = side.finished = side.fin_sent = True
        other = self.other(side)
        if not other.gone:
            # The lost transport no longer throttles the other side's reads: read
            # on (and drop) what it still sends, so that it can close without RST.
            other.gate.resume(BACKPRESSURE)
            self._finish(other)
        self._settle()

    # ------------------------------------------------------------ closing
    def _finish(self, side: Side) -> None:
        if side.finished or side.gone:
            return
        side.finished = True
        side.finish()

    def _settle(self) -> None:
        """Close what can be closed now, or wait (lingering) for what cannot.

        A connection that sent EOF will send nothing more, so closing it (after
        our last writes, which ``close`` flushes) leaves nothing unread."""
        a, b = self.a, self.b
        if a.gone and b.gone:
            self._done()
        elif a.gone or b.gone:
            rest = b if a.gone else a
            if rest.eof:
                rest.close()
            else:
                self._arm(rest)
        elif a.eof and b.eof:
            a.close()
            b.close()

    def _arm(self, side: Side) -> None:
        """(Re)start the wait for a finished side to close by itself."""
        if side.gone or self.closed:
            return
        delay = self.linger if side.fin_sent else self.flush_timeout
        if self.timer is not None and self.timer.active():
            self.timer.reset(delay)
        else:
            self.timer = self.clock.callLater(delay, self._expired, side)

    def _expired(self, side: Side) -> None:
        self.timer = None
        if side.gone:
            return
        if side.fin_sent:
            log.debug("relay: {side} stayed open {t} s after our EOF; closing it", side=side, t=self.linger)
            side.close()
        else:
            log.info("relay: {side} did not take our last bytes within {t} s; aborting it",
                     side=side, t=self.flush_timeout)
            side.abort()

    def _done(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if self.on_closed is not None:
            self.on_closed()

    def abort(self) -> None:
        """Cut both connections (drain timeout, shutdown)."""
        for side in (self.a, self.b):
            if not side.gone:
                side.abort()


@implementer(IHalfCloseableProtocol)
class RelayedStream(Outbound):
    """An outgoing connection whose every event goes to its relay (a bridge
    target).  ``side`` is set as soon as the connection is made."""

    side: Side | None = None

    def connectionMade(self) -> None:
        set_nodelay(self.transport)  # each write is a whole message: never wait for Nagle
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        side = self.side
        if side is not None:
            side.relay.received(side, data)

    def readConnectionLost(self) -> None:
        side = self.side
        if side is not None:
            side.relay.read_ended(side)
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        side = self.side
        if side is not None:
            side.relay.write_closed(side)

    def connectionLost(self, reason=None) -> None:
        side, self.side = self.side, None
        if side is not None:
            side.relay.lost(side)


__all__ = ["FLUSH_TIMEOUT", "LINGER_TIMEOUT", "Relay", "RelayedStream", "Side", "is_tls"]
