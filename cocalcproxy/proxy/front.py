"""One client connection: read requests, route each, relay it, answer in order.

State machine (one exchange at a time; pipelined requests wait in the reader):

    WAIT_HEAD ──head──► route ──local answer──► WAIT_HEAD
                          │
                          └─Forward──► CONNECTING ──► FORWARDING ──END of response──► WAIT_HEAD
                                                        │                             (or CLOSING)
                                                        └─101──► TUNNEL

Bodies are never collected: request body spans go to the backend transport as
they are parsed, response spans to the client transport; each transport is
registered as the other's streaming producer (through a ``PauseGate``), so a
slow reader on one side stops the socket reads on the other (SPEC §3).

Error policy (docs/http.md): a malformed request gets its 4xx/5xx and the
connection closes; a backend that fails before the response head gives 502/504;
one that dies mid-response makes us close the client connection, so the
truncation is visible to the client and never turns into a keep-alive.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from ..http1.errors import ProtocolError
from ..http1.head import RequestHead, ResponseHead
from ..http1.reader import BODY_UNTIL_CLOSE, END, NEED_DATA, PAUSED, RequestReader
from ..http1.reader import CLOSED as READER_CLOSED
from ..net.fasttcp import set_nodelay
from ..net.gate import BACKPRESSURE, CONNECTING, HANDOFF, PIPELINE, PauseGate, unregister
from ..routing.forwarding import Peer, override_headers, request_head_bytes, response_head_bytes
from ..routing.types import Forward, Handoff, Local, Named, Redirect, Reject
from . import errors as pages
from . import rewrite
from .back import HttpBack, connect_error_status

log = Logger()

WAIT_HEAD, CONNECTING_STATE, FORWARDING, TUNNEL, CLOSING, ROUTING, DELEGATED = range(7)
_NEVER = float("inf")


@implementer(IHalfCloseableProtocol)
class HttpFront(Protocol):
    """The protocol built for every accepted client connection."""

    def __init__(self, factory) -> None:
        self.factory = factory
        cfg = factory.config
        self.reader = RequestReader(cfg.max_header_bytes)
        self.state = WAIT_HEAD
        self.gate: PauseGate | None = None
        self.peer: Peer | None = None
        self.req: RequestHead | None = None
        self.route: Forward | None = None
        self.backend: HttpBack | None = None
        self.out_head = b""
        self.req_done = False
        self.resp_head_sent = False
        self.keep_alive = True
        self.backend_keep = False
        self.feeding_backend = False  # our gate is registered as the backend's producer
        self.reused = False
        self.retried = False
        self.client_eof = False
        self.connect_d = None
        self.deadline = _NEVER
        self.served = 0
        self.tunnel_read_closed_sides = 0
        self.delegate = None  # the protocol that owns the connection after a Handoff
        self.tunnel_activity = None  # the activity hook while a tunnel counts as activity
        self.rewriter = None  # a proxy.rewrite buffer for servers with rewrite_response

    # ------------------------------------------------------------ connection
    def connectionMade(self) -> None:
        transport = self.transport
        self.gate = PauseGate(transport)
        set_nodelay(transport)
        self.peer = self.factory.peer_for(transport)
        self.deadline = self.factory.clock.seconds() + self.factory.config.header_timeout

    def dataReceived(self, data: bytes) -> None:
        state = self.state
        if state == TUNNEL:
            self.backend.transport.write(data)
            if self.tunnel_activity is not None:
                self.tunnel_activity()
            return
        if state == DELEGATED:
            self.delegate.dataReceived(data)
            return
        reader = self.reader
        if state == WAIT_HEAD:
            if not reader.buf:
                self.deadline = self.factory.clock.seconds() + self.factory.config.header_timeout
            reader.receive(data)
            self._serve()
        elif state == FORWARDING and not self.req_done:
            reader.receive(data)
            self._pump_request()
        elif state == CLOSING:
            return
        else:
            reader.receive(data)
            if reader.buffered > self.factory.config.max_header_bytes:
                self.gate.pause(PIPELINE)

    def readConnectionLost(self) -> None:
        """The client sent FIN (a half-close, as ``printf … | nc -N`` does).

        Every request received in full before it is answered, in order, and then
        the connection closes; a request cut short by it is never completed
        towards the backend.  (A client that closed for good is noticed when its
        answer is written: the write fails and the backend connection is closed.)
        """
        self.client_eof = True
        state = self.state
        if state == TUNNEL:
            self.tunnel_read_closed(self)
            return
        if state == DELEGATED:
            if IHalfCloseableProtocol.providedBy(self.delegate):
                self.delegate.readConnectionLost()
            else:
                self.transport.loseConnection()
            return
        self.reader.receive_eof()
        if state == WAIT_HEAD:
            self._serve()  # answers what is complete; the reader then reports CLOSED
        elif state == FORWARDING and not self.req_done:
            self._close_all()  # the request body can never be completed
        # Otherwise (connecting, routing, or waiting for the response to a complete
        # request) the exchange goes on, and the requests behind it; the connection
        # closes when the reader reports CLOSED (all of them answered).

    def writeConnectionLost(self) -> None:
        if self.state == TUNNEL:
            self.tunnel_write_closed(self)
        elif self.state == DELEGATED and IHalfCloseableProtocol.providedBy(self.delegate):
            self.delegate.writeConnectionLost()

    def connectionLost(self, reason=None) -> None:
        delegated = self.state == DELEGATED
        self.state = CLOSING
        self.factory.tracker.remove(self)
        if delegated:
            delegate, self.delegate = self.delegate, None
            delegate.connectionLost(reason)
            return
        d, self.connect_d = self.connect_d, None
        if d is not None:
            d.cancel()
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.front = None
            backend.close(abort=not backend.tunnel)

    # ------------------------------------------------------------- requests
    def _serve(self) -> None:
        """Take requests from the reader while we can answer them right away."""
        reader = self.reader
        while self.state == WAIT_HEAD:
            try:
                ev = reader.next_event()
            except ProtocolError as e:
                self._answer_error(e.status, e.message, close=True)
                return
            if ev is NEED_DATA:
                if self.deadline == _NEVER:
                    # After an exchange: a partial next head gets the header timeout,
                    # an empty buffer the idle timeout (never no timeout at all).
                    cfg = self.factory.config
                    wait = cfg.header_timeout if reader.buf else cfg.idle_timeout
                    self.deadline = self.factory.clock.seconds() + wait
                return
            if ev is READER_CLOSED or ev is PAUSED:
                self._close_all()
                return
            if ev is END:  # the end of a request answered locally: on to the next one
                self.req = None
                reader.start_next()
                continue
            self.req = req = ev
            self.deadline = _NEVER
            self.served += 1
            route = self.factory.route(req)
            if isinstance(route, Deferred):
                self._await_route(route)
                return
            if not self._dispatch(req, route):
                return

    def _dispatch(self, req: RequestHead, route) -> bool:
        """Carry out ``route`` for ``req``; True if the next request may be read now."""
        kind = type(route)
        if kind is Forward:
            self._forward(req, route)
            return False
        if kind is Handoff:
            self._handoff(req, route)
            return False
        if kind is Reject:
            self._answer_error(route.status, route.message, close=req.has_body)
        elif kind is Redirect:
            opts = self._answer_opts(req.has_body)
            self._answer(pages.redirect_response(route.location, route.status, **opts), opts["close"])
        elif kind is Local:
            opts = self._answer_opts(req.has_body)
            self._answer(self.factory.local_response(route, req, **opts), opts["close"])
        elif kind is Named:
            self._answer_error(404, "No such server.", close=req.has_body)
        else:  # pragma: no cover - routers are total
            self._answer_error(500, "Internal routing error.", close=True)
        if self.state == CLOSING:
            return False
        if self.reader.buf or self.reader.eof:
            return True
        self._idle()
        return False

    # ---------------------------------------------------- asynchronous routes
    def _await_route(self, d: Deferred) -> None:
        """The router needs I/O (a server process start, a registry lookup): hold
        the client's bytes in the kernel until it has decided."""
        self.state = ROUTING
        self.gate.pause(HANDOFF)
        d.addCallbacks(self._route_decided, self._route_failed)

    def _route_decided(self, route) -> None:
        if self.state != ROUTING:
            return  # the client went away meanwhile
        self.state = WAIT_HEAD
        self.gate.resume(HANDOFF)
        if self._dispatch(self.req, route):
            self._serve()

    def _route_failed(self, failure) -> None:
        log.failure("routing failed for {target!r}", failure, target=self.req.target if self.req else None)
        if self.state != ROUTING:
            return
        self.state = WAIT_HEAD
        self.gate.resume(HANDOFF)
        self._answer_error(502, "The proxy could not route this request.", close=True)

    # ---------------------------------------------------------------- handoff
    def _handoff(self, req: RequestHead, route: Handoff) -> None:
        """Give the connection to another protocol, replaying the raw bytes read so far."""
        raw = b"".join(
            [req.method, b" ", req.target, b" ", req.version, b"\r\n"]
            + [line + b"\r\n" for _, _, line in req.headers]
            + [b"\r\n", self.reader.trailing()]
        )
        self.state = DELEGATED
        self.gate.resume(HANDOFF | PIPELINE | CONNECTING | BACKPRESSURE)
        self.delegate = route.start(self.transport, raw)

    def _answer_opts(self, has_body: bool) -> dict:
        req = self.req
        close = has_body or not req.keep_alive or self.factory.tracker.draining
        return {"close": close, "keep_alive_10": not close and not req.is_11, "head_only": req.method == b"HEAD"}

    def _answer(self, data: bytes, close: bool) -> None:
        """Write a response the proxy made itself."""
        self.transport.write(data)
        if close:
            self._close_after_write()

    def _answer_error(self, status: int, message: str, close: bool) -> None:
        req = self.req if self.state == WAIT_HEAD else None
        accept = req.get(b"accept") if req is not None else None
        if req is None:
            close = True
            opts = {"close": True}
        else:
            opts = self._answer_opts(close)
        self.transport.write(pages.error_response(status, message, accept=accept, **opts))
        if opts["close"]:
            self._close_after_write()

    def _idle(self) -> None:
        self.deadline = self.factory.clock.seconds() + self.factory.config.idle_timeout

    def _close_after_write(self) -> None:
        self.state = CLOSING
        self.deadline = _NEVER
        transport = self.transport
        unregister(transport)
        transport.loseConnection()

    def _close_all(self) -> None:
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.front = None
            backend.close(abort=True)
        self._close_after_write()

    # -------------------------------------------------------------- forward
    def _forward(self, req: RequestHead, route: Forward) -> None:
        self.route = route
        self.keep_alive = req.keep_alive and not self.factory.tracker.draining
        self.req_done = False
        self.resp_head_sent = False
        self.retried = False
        self.out_head = request_head_bytes(req, route.target, self.peer, route.context_path)
        if route.set_headers:
            self.out_head = override_headers(self.out_head, route.set_headers)
        key = (route.host, route.port)
        backend = self.factory.pool.get(key)
        if backend is not None:
            self._attach(backend, reused=True)
        else:
            self._connect(key)

    def _connect(self, key) -> None:
        self.state = CONNECTING_STATE
        self.gate.pause(CONNECTING)
        d = self.factory.connect(key[0], key[1], key)
        self.connect_d = d
        d.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, backend: HttpBack) -> None:
        self.connect_d = None
        if self.state != CONNECTING_STATE:
            backend.close(abort=True)
            return
        backend.pool = self.factory.pool
        self.gate.resume(CONNECTING)
        self._attach(backend, reused=False)

    def _connect_failed(self, failure) -> None:
        self.connect_d = None
        if self.state != CONNECTING_STATE:
            return None
        status, message = connect_error_status(failure)
        self.state = WAIT_HEAD
        self.gate.resume(CONNECTING)
        self._answer_error(status, message, close=True)
        return None

    def _attach(self, backend: HttpBack, reused: bool) -> None:
        req = self.req
        self.backend = backend
        self.reused = reused
        backend.front = self
        backend.received = False
        rewriting = self.route.rewrite is not None
        backend.reader.expect(req.method == b"HEAD", req.upgrade, decode_chunked=not req.is_11 or rewriting)
        self.state = FORWARDING
        self.transport.registerProducer(backend.gate, True)
        if req.has_body:
            self._feed_backend(True)
        self._pump_request(self.out_head)

    def _feed_backend(self, on: bool) -> None:
        """(Un)register our socket as the producer of the backend connection's writes."""
        if on == self.feeding_backend:
            return
        self.feeding_backend = on
        if on:
            self.backend.transport.registerProducer(self.gate, True)
        else:
            if self.backend is not None:
                unregister(self.backend.transport)
            self.gate.resume(BACKPRESSURE)

    def _pump_request(self, first: bytes | None = None) -> None:
        """Send what the reader has of the current request to the backend."""
        reader = self.reader
        out = [first] if first else []
        try:
            while True:
                ev = reader.next_event()
                if ev is NEED_DATA:
                    break
                if ev is END:
                    self.req_done = True
                    break
                if ev is PAUSED:  # pragma: no cover - cannot happen before END
                    break
                out.append(ev)
        except ProtocolError as e:
            self._request_body_failed(e)
            return
        backend = self.backend
        if out:
            backend.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if self.req_done:
            self._feed_backend(False)
            if reader.buffered > self.factory.config.max_header_bytes:
                self.gate.pause(PIPELINE)

    def _request_body_failed(self, e: ProtocolError) -> None:
        """Bad framing in the middle of a request body: the backend's request can
        never be completed, so it is dropped; the client gets the error if no
        response has started, and the connection closes either way."""
        self._feed_backend(False)
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.front = None
            backend.close(abort=True)
        if not self.resp_head_sent:
            self.state = WAIT_HEAD
            self.req_done = True
            self._answer_error(e.status, e.message, close=True)
        else:
            self._close_after_write()

    # ------------------------------------------------------------- responses
    def response_data(self) -> None:
        """The backend's reader has new bytes: relay what forms response events."""
        backend = self.backend
        reader = backend.reader
        out: list[bytes] = []
        done = False
        try:
            while True:
                ev = reader.next_event()
                if type(ev) is bytes:
                    out.append(ev)
                    continue
                if ev is NEED_DATA or ev is PAUSED:
                    break
                if ev is END:
                    done = True
                    break
                if ev is READER_CLOSED:
                    break
                # a response head
                if ev.status < 200:
                    if ev.status == 101:
                        self._start_tunnel(ev, out)
                        return
                    if self.req.is_11:
                        out.append(response_head_bytes(ev, keep_alive=True, client_is_11=True, reframe=False, context_path=None))
                    continue
                out.append(self._final_head(ev))
                if self.rewriter is not None:  # rewrite_response: hold the response back
                    self.rewriter.start(out.pop())
                    if out:
                        self.transport.write(b"".join(out))
                        out = []
        except ProtocolError as e:
            if out and self.rewriter is None:
                self.transport.write(b"".join(out))
            self.rewriter = None
            self._response_failed(e.status, e.message)
            return
        if self.rewriter is not None:
            if not rewrite.relay(self, out, done):
                return
            out = []
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if done:
            self._response_complete()

    def _final_head(self, resp: ResponseHead) -> bytes:
        req = self.req
        reframe = resp.chunked and not req.is_11 and req.method != b"HEAD" and resp.status not in (204, 304)
        until_close = self.backend.reader.state is BODY_UNTIL_CLOSE
        if reframe or until_close or not self.req_done:
            self.keep_alive = False
        self.backend_keep = resp.keep_alive and not until_close and req.is_11
        self.resp_head_sent = True
        route = self.route
        if route.rewrite is not None and req.method != b"HEAD" and resp.status not in (204, 304):
            self.rewriter = route.rewrite()
            self.resp_head_sent = False
            reframe = True
        if route.activity and self.factory.activity is not None:
            self.factory.activity()
        return response_head_bytes(
            resp,
            keep_alive=self.keep_alive,
            client_is_11=req.is_11,
            reframe=reframe,
            context_path=self.route.context_path,
        )

    def _response_complete(self) -> None:
        self._feed_backend(False)
        backend, self.backend = self.backend, None
        transport = self.transport
        unregister(transport)
        # Bytes beyond the end of the response belong to no request: such a
        # backend is never reused (they would reach the next client as its answer).
        reusable = (
            self.backend_keep and self.req_done and backend.alive and not backend.read_closed
            and not backend.reader.buffered
        )
        backend.front = None
        if reusable:
            backend.gate.reasons = 0
            backend.transport.resumeProducing()
            self.factory.pool.put(backend)
        else:
            backend.close()
        if not self.keep_alive or not self.req_done or self.factory.tracker.draining:
            self._close_after_write()
            return
        self.state = WAIT_HEAD
        # Nothing of the finished exchange stays with an idle connection (it is
        # what a thousand idle keep-alive connections are made of).
        self.req = self.route = None
        self.out_head = b""
        reader = self.reader
        reader.start_next()
        self.gate.resume(PIPELINE)
        if reader.buf or reader.eof:
            self._serve()
        else:
            self._idle()

    def _response_failed(self, status: int, message: str) -> None:
        self._feed_backend(False)
        self.rewriter = None  # a response held for rewrite_response is dropped with it
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.front = None
            backend.close(abort=True)
        if not self.resp_head_sent:
            self.state = WAIT_HEAD
            self._answer_error(status, message, close=True)
        else:
            self._close_after_write()

    def backend_lost(self, backend: HttpBack, reason) -> None:
        """The backend connection closed while this exchange owned it."""
        if backend is not self.backend:
            return
        if self.state == TUNNEL:
            self.backend = None
            backend.front = None
            self._close_after_write()
            return
        if self.state != FORWARDING:
            return
        reader = backend.reader
        if not reader.eof:
            reader.receive_eof()
            self.response_data()
            if self.backend is not backend:
                return  # the EOF completed (or failed) the response
        if not backend.received and self.reused and not self.retried and not self.req.has_body:
            # A pooled connection the backend closed just as we reused it: the
            # request never reached it, so it is safe to send again, once.
            self.retried = True
            self._feed_backend(False)
            self.backend = None
            backend.front = None
            unregister(self.transport)
            self._connect((self.route.host, self.route.port))
            return
        self._response_failed(502, "The backend closed the connection before answering.")

    # ---------------------------------------------------------------- tunnel
    def _start_tunnel(self, resp: ResponseHead, out: list[bytes]) -> None:
        """101 Switching Protocols: from here on, bytes are spliced both ways."""
        backend = self.backend
        self.state = TUNNEL
        backend.tunnel = True
        self.resp_head_sent = True
        if self.route.activity and self.factory.activity is not None:
            self.tunnel_activity = self.factory.activity
            self.tunnel_activity()
        out.append(response_head_bytes(resp, keep_alive=True, client_is_11=True, reframe=False, context_path=None, upgrade=True))
        early = backend.reader.trailing()
        if early:
            out.append(early)
        self.transport.write(b"".join(out))
        pending = self.reader.trailing()
        self._feed_backend(True)
        if pending:
            backend.transport.write(pending)
        self.gate.resume(PIPELINE)
        if self.client_eof:
            self.tunnel_read_closed(self)

    def tunnel_read_closed(self, side) -> None:
        """One side sent FIN: pass it on (TCP half-close), or close both under TLS."""
        backend = self.backend
        if backend is None:
            return
        if side is self:
            src, dst = self.transport, backend.transport
        else:
            src, dst = backend.transport, self.transport
        self.tunnel_read_closed_sides += 1
        if self.tunnel_read_closed_sides >= 2 or ISSLTransport.providedBy(dst) or ISSLTransport.providedBy(src):
            self._close_tunnel()
            return
        if dst is backend.transport:
            self._feed_backend(False)
        else:
            unregister(dst)
        dst.loseWriteConnection()

    def tunnel_write_closed(self, side) -> None:
        pass

    def _close_tunnel(self) -> None:
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.front = None
            backend.close()
        self._close_after_write()

    # ------------------------------------------------------------- shutdown
    def begin_drain(self) -> None:
        """The process is stopping: close when idle, else after the current response."""
        self.keep_alive = False
        if self.state == WAIT_HEAD and not self.reader.buf:
            self._close_after_write()
        elif self.state == DELEGATED:
            drain = getattr(self.delegate, "begin_drain", None)
            if drain is not None:
                drain()

    def abort(self) -> None:
        self._close_all()
        self.transport.abortConnection()

    # ------------------------------------------------------------- timeouts
    def timed_out(self, now: float) -> None:
        """Called by the tracker when ``deadline`` has passed."""
        self.deadline = _NEVER
        if self.state != WAIT_HEAD:
            return
        if self.reader.buf or not self.served:
            self.req = None
            self._answer_error(408, "The request head was not received in time.", close=True)
        else:
            self._close_after_write()
