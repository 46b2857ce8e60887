"""Forwarding one request to a backend, and the tunnel after a 101: the half of
``HttpFront`` that talks to backends (a mixin, so the connection's state stays
in one object; ``front.py`` has the other half and the state diagram).

Request body spans are written to the backend as they are parsed, response
spans to the client; while a body flows, each transport is the other's
streaming producer through the gates.  A response may be held back by the
route's ``ResponseFilter`` (``exchange.py``), which never touches a transport.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.logger import Logger

from ..http1.errors import ProtocolError
from ..http1.reader import BODY_UNTIL_CLOSE, END, NEED_DATA, PAUSED
from ..http1.reader import CLOSED as READER_CLOSED
from ..net.gate import BACKPRESSURE, CONNECTING, PIPELINE, unregister
from ..net.relay import Relay, Side
from ..routing.headers import request_head_bytes
from ..routing.types import Forward
from .back import HttpBack, connect_error_status
from .exchange import FilterError
from .state import CONNECTING as CONNECTING_STATE
from .state import FORWARDING, TUNNEL, WAIT_HEAD


log = Logger()


class Forwarding:
    """Mixin for ``HttpFront``: everything between ``Forward`` and the end of the response."""

    # -------------------------------------------------------------- forward
    def _forward(self, route: Forward) -> None:
        ex = self.ex
        ex.route = route
        if self.factory.tracker.draining:
            ex.keep_alive = False
        peer = self.peer
        if route.trusted is not None and route.trusted != peer.trusted:
            peer = replace(peer, trusted=route.trusted)
        ex.out_head = request_head_bytes(ex.req, route.target, peer, route.context_path, route.set_headers,
                                         route.strip, route.strip_cookies)
        key = (route.host, route.port) if route.tls is None else (route.host, route.port, route.tls)
        backend = self.factory.pool.get(key)
        if backend is not None:
            self._attach(backend, reused=True)
        else:
            self._connect(key)

    def _connect(self, key) -> None:
        self.state = CONNECTING_STATE
        self.gate.pause(CONNECTING)
        d = self.connect_d = self.factory.connect(key[0], key[1], key)
        d.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, backend: HttpBack) -> None:
        self.connect_d = None
        if self.state is not CONNECTING_STATE:
            backend.close(abort=True)
            return
        backend.pool = self.factory.pool
        self.gate.resume(CONNECTING)
        self._attach(backend, reused=False)

    def _connect_failed(self, failure) -> None:
        self.connect_d = None
        if self.state is not CONNECTING_STATE:
            return None
        status, message = connect_error_status(failure)
        self.state = WAIT_HEAD
        self.gate.resume(CONNECTING)
        self._answer_error(status, message, close=True)
        return None

    def _attach(self, backend: HttpBack, reused: bool) -> None:
        ex = self.ex
        ex.backend = backend
        ex.reused = reused
        backend.front = self
        backend.received = False
        backend.reader.expect(ex.head_request, ex.req.upgrade, decode_chunked=ex.decode_chunked())
        self.state = FORWARDING
        self.transport.registerProducer(backend.gate, True)
        if not ex.request_done:
            self._feed_backend(True)
        self._pump_request(ex.out_head)

    def _feed_backend(self, on: bool) -> None:
        """(Un)register our socket as the producer of the backend connection's writes."""
        ex = self.ex
        if ex is None or on == ex.feeding_backend:
            return
        ex.feeding_backend = on
        if on:
            ex.backend.transport.registerProducer(self.gate, True)
        else:
            if ex.backend is not None:
                unregister(ex.backend.transport)
            self.gate.resume(BACKPRESSURE)

    def _detach(self, *, abort: bool = False, pool: bool = False) -> HttpBack | None:
        """Separate the current backend from this connection: stop feeding it,
        then pool it, close it or abort it.  The one place that lets a backend go."""
        ex = self.ex
        backend = ex.backend if ex is not None else None
        if backend is None:
            return None
        self._feed_backend(False)
        ex.backend = None
        backend.front = None
        if pool:
            backend.make_idle()
            self.factory.pool.put(backend)
        elif backend.alive:
            backend.close(abort=abort)
        return backend

    def _pump_request(self, first: bytes | None = None) -> None:
        """Send what the reader has of the current request to the backend."""
        reader = self.reader
        ex = self.ex
        out = [first] if first else []
        try:
            while True:
                ev = reader.next_event()
                if ev is NEED_DATA or ev is PAUSED:
                    break
                if ev is END:
                    ex.request_done = True
                    break
                out.append(ev)
        except ProtocolError as e:
            self._request_body_failed(e)
            return
        if out:
            ex.backend.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if ex.request_done:
            self._feed_backend(False)
            if reader.buffered > self.factory.config.max_header_bytes:
                self.gate.pause(PIPELINE)
        else:
            # What piled up while routing or connecting (TLS hands over what it
            # had decrypted after the pause) was this request's own body, and it
            # has gone on: only the backend's backpressure holds the client now.
            self.gate.resume(PIPELINE)

    def _request_body_failed(self, e: ProtocolError) -> None:
        """Bad framing in the middle of a request body: the backend's request can
        never be completed, so it is dropped; the client gets the error if no
        response has started, and the connection closes either way."""
        self._detach(abort=True)
        if self.ex.response_started:
            self._close_now()
        else:
            self.state = WAIT_HEAD
            self._answer_error(e.status, e.message, close=True)

    # ------------------------------------------------------------- responses
    def response_data(self) -> None:
        """The backend's reader has new bytes: relay what forms response events."""
        ex = self.ex
        reader = ex.backend.reader
        out: list[bytes] = []
        done = False
        try:
            while True:
                ev = reader.next_event()
                if type(ev) is bytes:
                    out.append(ev)
                    continue
                if ev is NEED_DATA or ev is PAUSED or ev is READER_CLOSED:
                    break
                if ev is END:
                    done = True
                    break
                if ev.status < 200:  # a response head: interim
                    if ev.status == 101:
                        self._start_tunnel(ev, out)
                        return
                    head = ex.interim_head(ev)
                    if head is not None:
                        out.append(head)
                    continue
                out.append(self._final_head(ev))
                if ex.filter is not None:  # rewrite_response: hold the response back
                    ex.filter.start(out.pop())
                    if out:  # interim responses before it go out now
                        self.transport.write(b"".join(out))
                        out = []
        except ProtocolError as e:
            if out and ex.filter is None:
                self.transport.write(b"".join(out))
            self._response_failed(e.status, e.message)
            return
        if ex.filter is not None:
            if not self._filtered(out, done):
                return
            out = []
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if done:
            self._response_complete()

    def _filtered(self, chunks: list[bytes], done: bool) -> bool:
        """Feed the response filter; at the end send what it made.  False if the
        response failed (too large, the filter could not make one)."""
        ex = self.ex
        try:
            ex.filter.feed(chunks)
            if not done:
                return True
            data = ex.filter.finish()
        except FilterError as e:
            self._response_failed(e.status, e.message)
            return False
        ex.filter = None
        ex.response_started = True
        self.transport.write(data)
        return True

    def _final_head(self, resp) -> bytes:
        ex = self.ex
        head = ex.final_head(resp, ex.backend.reader.state is BODY_UNTIL_CLOSE)
        if ex.route.activity and self.factory.activity is not None:
            self.factory.activity()
        return head

    def _response_complete(self) -> None:
        ex = self.ex
        backend = ex.backend
        unregister(self.transport)
        self._detach(pool=ex.reusable(backend))
        if not ex.keep_alive or not ex.request_done or self.factory.tracker.draining:
            self._close_after_answer()
            return
        self.state = WAIT_HEAD
        # Nothing of the finished exchange stays with an idle connection (it is
        # what a thousand idle keep-alive connections are made of).
        self.ex = None
        reader = self.reader
        reader.start_next()
        self.gate.resume(PIPELINE)
        if reader.buf or reader.eof:
            self._serve()
        else:
            self._idle()

    def _response_failed(self, status: int, message: str) -> None:
        ex = self.ex
        ex.filter = None  # a response held for rewrite_response is dropped with it
        self._detach(abort=True)
        if ex.response_started:
            self._close_now()
        else:
            self.state = WAIT_HEAD
            self._answer_error(status, message, close=True)

    def backend_lost(self, backend: HttpBack, reason) -> None:
        """The backend connection closed while this exchange owned it."""
        ex = self.ex
        if ex is None or backend is not ex.backend or self.state is not FORWARDING:
            return
        reader = backend.reader
        if not reader.eof:
            reader.receive_eof()
            self.response_data()
            if ex.backend is not backend:
                return  # the EOF completed (or failed) the response
        if not backend.received and ex.reused and not ex.retried and ex.request_done and not ex.req.has_body:
            # A pooled connection the backend closed just as we reused it: the
            # request never reached it, so it is safe to send again, once.
            ex.retried = True
            self._detach()
            unregister(self.transport)
            self._connect(backend.key)
            return
        if not backend.received and backend.tls_failed(reason):
            log.warn("TLS to {host}:{port} failed: {reason}", host=backend.key[0], port=backend.key[1],
                     reason=reason.getErrorMessage())
            self._response_failed(502, "TLS with the backend failed: a certificate was not verified or "
                                       "not accepted.")
            return
        self._response_failed(502, "The backend closed the connection before answering.")

    # ---------------------------------------------------------------- tunnel
    def _start_tunnel(self, resp, out: list[bytes]) -> None:
        """101 Switching Protocols: from here on a ``Relay`` splices bytes both ways."""
        ex = self.ex
        backend = ex.backend
        self._feed_backend(False)
        ex.backend = None
        self.ex = None
        self.state = TUNNEL
        activity = self.factory.activity if ex.route.activity else None
        if activity is not None:
            activity()
        out.append(ex.upgrade_head(resp))
        early = backend.reader.trailing()
        if early:
            out.append(early)
        self.transport.write(b"".join(out))
        pending = self.reader.trailing()
        self.side = Side(self.transport, self.gate, "client")
        backend.side = Side(backend.transport, backend.gate, "backend")
        self.relay = relay = Relay(self.factory.clock, self.side, backend.side,
                                   on_data=(lambda side, n: activity()) if activity is not None else None)
        relay.start()
        if pending:
            relay.received(self.side, pending)
        self.gate.resume(PIPELINE)
        if self.client_eof:
            relay.read_ended(self.side)
        if backend.read_closed:
            relay.read_ended(backend.side)
