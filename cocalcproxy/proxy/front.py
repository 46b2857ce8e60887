"""One client connection: read requests, route each, relay it, answer in order.

States (``proxy.state.State``; one exchange at a time, pipelined requests wait unread in
the reader)::

              answered locally (Reject, Redirect, Local), keep-alive
            ┌────────────────────────────────────────────────┐
            ▼                                                │
 accept ► WAIT_HEAD ──head──► router ────────────────────────┤
            ▲  ▲                │  │  └──── Handoff ────────► DELEGATED
            │  └── ROUTING ◄────┘  │         (Deferred route; client paused)
            │                      │ Forward
            │   no idle backend ───┴─── idle backend in the pool
            │        ▼                        │
            │   CONNECTING ──connected──► FORWARDING ──101──► TUNNEL (a Relay)
            │                                 │
            └──── response complete, keep-alive
   any state ──answer sent, client may still be sending──► LINGERING ──► CLOSING
   any state ──error / close / client gone───────────────────────────► CLOSING

Bodies are never collected: request body spans go to the backend transport as
they are parsed, response spans to the client transport; each transport is
registered as the other's streaming producer (through a ``PauseGate``), so a
slow reader on one side stops the socket reads on the other (SPEC §3).

Error policy (docs/http.md): a malformed request gets its 4xx/5xx and the
connection closes; a backend that fails before the response head gives 502/504;
one that dies mid-response makes us close the client connection, so the
truncation is visible to the client and never turns into a keep-alive.  An
answer sent while the client may still be sending (a request body we will not
read) is followed by a lingering close: FIN, then what the client still sends
is read and dropped for a while, so its kernel never turns our close into an
RST that destroys the answer before the client read it.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from .. import limits
from ..http1.errors import ProtocolError
from ..http1.reader import END, NEED_DATA, PAUSED, RequestReader
from ..http1.reader import CLOSED as READER_CLOSED
from ..http1.serialize import raw_request_head
from ..net.fasttcp import set_nodelay
from ..net.gate import BACKPRESSURE, CONNECTING, HANDOFF, PIPELINE, PauseGate, unregister
from ..net.relay import Relay, Side, is_tls
from ..routing.headers import Peer
from ..routing.types import Forward, Handoff, Local, Named, Redirect, Reject
from . import pages
from .exchange import Exchange, answer_options
from .forwarding import Forwarding
from .state import CLOSING, DELEGATED, FORWARDING, LINGERING, NEVER, ROUTING, TUNNEL, WAIT_HEAD

log = Logger()


_NEVER = NEVER


@implementer(IHalfCloseableProtocol)
class HttpFront(Forwarding, Protocol):
    """The protocol built for every accepted client connection."""

    def __init__(self, factory) -> None:
        self.factory = factory
        self.reader = RequestReader(factory.config.max_header_bytes)
        self.state = WAIT_HEAD
        self.gate: PauseGate | None = None
        self.peer: Peer | None = None
        self.ex: Exchange | None = None  # the current request, if any
        self.client_eof = False
        self.connect_d: Deferred | None = None
        self.deadline = _NEVER  # checked by the tracker's sweep
        self.linger_until = _NEVER
        self.served = 0
        self.relay: Relay | None = None  # TUNNEL
        self.side: Side | None = None  # our side of the relay
        self.delegate = None  # the protocol that owns the connection after a Handoff

    # ------------------------------------------------------------ connection
    def connectionMade(self) -> None:
        transport = self.transport
        self.gate = PauseGate(transport)
        set_nodelay(transport)
        self.peer = self.factory.peer_for(transport)
        self.deadline = self.factory.clock.seconds() + self.factory.config.header_timeout

    def dataReceived(self, data: bytes) -> None:
        state = self.state
        if state is TUNNEL:
            self.relay.received(self.side, data)
            return
        if state is DELEGATED:
            self.delegate.dataReceived(data)
            return
        reader = self.reader
        if state is WAIT_HEAD:
            if not reader.buf:
                self.deadline = self.factory.clock.seconds() + self.factory.config.header_timeout
            reader.receive(data)
            self._serve()
        elif state is FORWARDING and not self.ex.request_done:
            reader.receive(data)
            self._pump_request()
        elif state is LINGERING:
            self.deadline = min(self.linger_until, self.factory.clock.seconds() + limits.LINGER_TIMEOUT)
        elif state is not CLOSING:
            reader.receive(data)
            if reader.buffered > self.factory.config.max_header_bytes:
                self.gate.pause(PIPELINE)

    def readConnectionLost(self) -> None:
        """The client sent FIN (a half-close, as ``printf … | nc -N`` does).

        Every request received in full before it is answered, in order, and then
        the connection closes; a request cut short by it is never completed
        towards the backend.
        """
        self.client_eof = True
        state = self.state
        if state is TUNNEL:
            self.relay.read_ended(self.side)
        elif state is DELEGATED:
            if IHalfCloseableProtocol.providedBy(self.delegate):
                self.delegate.readConnectionLost()
            else:
                self.transport.loseConnection()
        elif state is LINGERING or state is CLOSING:
            self._close_now()
        else:
            self.reader.receive_eof()
            if state is WAIT_HEAD:
                self._serve()  # answers what is complete; the reader then reports CLOSED
            elif state is FORWARDING and not self.ex.request_done:
                self._detach(abort=True)  # the request body can never be completed
                self._close_now()
            # Otherwise (connecting, routing, or waiting for the response to a
            # complete request) the exchange goes on, and the requests behind it;
            # the connection closes when the reader reports CLOSED.

    def writeConnectionLost(self) -> None:
        if self.state is TUNNEL:
            self.relay.write_closed(self.side)
        elif self.state is DELEGATED and IHalfCloseableProtocol.providedBy(self.delegate):
            self.delegate.writeConnectionLost()

    def connectionLost(self, reason=None) -> None:
        state, self.state = self.state, CLOSING
        self.factory.tracker.remove(self)
        if state is DELEGATED:
            delegate, self.delegate = self.delegate, None
            delegate.connectionLost(reason)
            return
        if state is TUNNEL:
            self.relay.lost(self.side)
            return
        d, self.connect_d = self.connect_d, None
        if d is not None:
            d.cancel()
        self._detach(abort=True)

    # ------------------------------------------------------------- requests
    def _serve(self) -> None:
        """Take requests from the reader while we can answer them right away."""
        reader = self.reader
        while self.state is WAIT_HEAD:
            try:
                ev = reader.next_event()
            except ProtocolError as e:
                self._answer_error(e.status, e.message, close=True)
                return
            if ev is NEED_DATA:
                self.gate.resume(PIPELINE)  # nothing held back any more: read on
                if self.deadline == _NEVER:
                    # After an exchange: a partial next head gets the header timeout,
                    # an empty buffer the idle timeout (never no timeout at all).
                    cfg = self.factory.config
                    wait = cfg.header_timeout if reader.buf else cfg.idle_timeout
                    self.deadline = self.factory.clock.seconds() + wait
                return
            if ev is READER_CLOSED or ev is PAUSED:
                self._close_now()
                return
            if ev is END:  # the end of a request answered locally: on to the next one
                self.ex = None
                reader.start_next()
                continue
            self.ex = Exchange(ev)
            self.deadline = _NEVER
            self.served += 1
            route = self.factory.route(ev)
            if isinstance(route, Deferred):
                self._await_route(route)
                return
            if not self._dispatch(route):
                return

    def _dispatch(self, route) -> bool:
        """Carry out ``route`` for the current request; True if the next request may be read now."""
        req = self.ex.req
        kind = type(route)
        if kind is Forward:
            self._forward(route)
            return False
        if kind is Handoff:
            self._handoff(route)
            return False
        if kind is Reject:
            self._answer_error(route.status, route.message, close=req.has_body, extra=route.headers)
        elif kind is Redirect:
            opts = answer_options(req, req.has_body, self.factory.tracker.draining)
            self._answer(pages.redirect_response(route.location, route.status, **opts), opts["close"])
        elif kind is Local:
            opts = answer_options(req, req.has_body, self.factory.tracker.draining)
            self._answer(self.factory.local_response(route, req, **opts), opts["close"])
        elif kind is Named:
            self._answer_error(404, "No such server.", close=req.has_body)
        else:  # pragma: no cover - routers are total
            self._answer_error(500, "Internal routing error.", close=True)
        if self.state is not WAIT_HEAD:
            return False
        if self.reader.buf or self.reader.eof:
            return True
        self._idle()
        return False

    def _await_route(self, d: Deferred) -> None:
        """The router needs I/O (a server process start, a registry lookup): hold
        the client's bytes in the kernel until it has decided."""
        self.state = ROUTING
        self.gate.pause(HANDOFF)
        d.addCallbacks(self._route_decided, self._route_failed)

    def _route_decided(self, route) -> None:
        if self.state is not ROUTING:
            return  # the client went away meanwhile
        self.state = WAIT_HEAD
        self.gate.resume(HANDOFF)
        if self._dispatch(route):
            self._serve()

    def _route_failed(self, failure) -> None:
        log.failure("routing failed for {target!r}", failure, target=self.ex.req.target if self.ex else None)
        if self.state is not ROUTING:
            return
        self.state = WAIT_HEAD
        self.gate.resume(HANDOFF)
        self._answer_error(502, "The proxy could not route this request.", close=True)

    def _handoff(self, route: Handoff) -> None:
        """Give the connection to another protocol, replaying the raw bytes read so far."""
        raw = raw_request_head(self.ex.req) + self.reader.trailing()
        self.state = DELEGATED
        self.ex = None
        self.deadline = _NEVER
        self.gate.resume(HANDOFF | PIPELINE | CONNECTING | BACKPRESSURE)
        self.delegate = route.start(self.transport, raw)

    # ------------------------------------------------------- local answers
    def _answer(self, data: bytes, close: bool) -> None:
        """Write a response the proxy made itself."""
        self.transport.write(data)
        if close:
            self._close_after_answer()

    def _answer_error(self, status: int, message: str, close: bool, extra: tuple = ()) -> None:
        req = self.ex.req if self.ex is not None and not self.ex.response_started else None
        opts = answer_options(req, close, self.factory.tracker.draining)
        accept = req.get(b"accept") if req is not None else None
        self.transport.write(pages.error_response(status, message, accept=accept, extra=extra, **opts))
        if opts["close"]:
            self._close_after_answer()

    def _idle(self) -> None:
        self.gate.resume(PIPELINE)  # nothing is buffered: nothing to hold back
        self.deadline = self.factory.clock.seconds() + self.factory.config.idle_timeout

    def _close_after_answer(self) -> None:
        """Close once the answer is written, lingering if the client may still be
        sending (an unread body, pipelined bytes): see the module docstring."""
        ex = self.ex
        unread = (ex is not None and not ex.request_done) or bool(self.reader.buf)
        if self.client_eof or not unread:
            self._close_now()
            return
        self.state = LINGERING
        now = self.factory.clock.seconds()
        self.linger_until = now + limits.LINGER_TIME
        self.deadline = now + limits.LINGER_TIMEOUT
        self.gate.resume(PIPELINE | CONNECTING | HANDOFF | BACKPRESSURE)
        transport = self.transport
        unregister(transport)
        if is_tls(transport):
            transport.loseConnection()  # close_notify; TLS reads on until the client closes
        else:
            transport.loseWriteConnection()

    def _close_now(self) -> None:
        self.state = CLOSING
        self.deadline = _NEVER
        self._detach(abort=True)
        transport = self.transport
        unregister(transport)
        transport.loseConnection()
        if is_tls(transport):
            # A TLS close waits for the client's close_notify; a client that never
            # sends one (or stops reading) must not hold the connection forever.
            self.deadline = self.factory.clock.seconds() + limits.LINGER_TIMEOUT

    # ------------------------------------------------------------- shutdown
    def begin_drain(self) -> None:
        """The process is stopping: close when idle, else after the current response."""
        if self.ex is not None:
            self.ex.keep_alive = False
        if self.state is WAIT_HEAD and not self.reader.buf:
            self._close_now()
        elif self.state is DELEGATED:
            drain = getattr(self.delegate, "begin_drain", None)
            if drain is not None:
                drain()

    def abort(self) -> None:
        if self.state is TUNNEL:
            self.relay.abort()
            return
        self._detach(abort=True)
        self.state = CLOSING
        unregister(self.transport)
        self.transport.abortConnection()

    # ------------------------------------------------------------- timeouts
    def timed_out(self, now: float) -> None:
        """Called by the tracker when ``deadline`` has passed."""
        self.deadline = _NEVER
        if self.state is LINGERING or self.state is CLOSING:
            self.state = CLOSING
            if is_tls(self.transport):
                self.transport.abortConnection()  # its close waits for a close_notify that did not come
            else:
                self.transport.loseConnection()
            return
        if self.state is not WAIT_HEAD:
            return
        if self.reader.buf or not self.served:
            self.ex = None
            self._answer_error(408, "The request head was not received in time.", close=True)
            if self.state is LINGERING:  # a client too slow to send a head gets no more time
                self.timed_out(now)
        else:
            self._close_now()
