"""One backend connection: reads responses for whichever client exchange owns it.

``HttpBack`` is deliberately thin.  It parses nothing itself; it feeds bytes
into its ``ResponseReader`` and tells its current front (the client connection
that borrowed it) that there is something to read.  Between exchanges it sits
in the ``BackendPool`` with ``front`` = None.
"""

from __future__ import annotations


from twisted.internet import defer, error
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from ..http1.reader import ResponseReader
from ..net.fasttcp import connect_tcp, set_nodelay
from ..net.gate import PauseGate, unregister

log = Logger()


@implementer(IHalfCloseableProtocol)
class HttpBack(Protocol):
    def __init__(self, key, max_head: int) -> None:
        self.key = key
        self.reader = ResponseReader(max_head)
        self.front = None
        self.gate: PauseGate | None = None
        self.tunnel = False
        self.received = False
        self.alive = False
        self.read_closed = False
        self.idle_since = 0.0
        self.pool = None
        self.on_connect: defer.Deferred | None = None

    # -- Twisted callbacks -------------------------------------------------
    def connectionMade(self) -> None:
        self.alive = True
        self.gate = PauseGate(self.transport)
        set_nodelay(self.transport)
        d, self.on_connect = self.on_connect, None
        if d is not None and not d.called:
            d.callback(self)

    def dataReceived(self, data: bytes) -> None:
        front = self.front
        if self.tunnel:
            if front is not None:
                front.transport.write(data)
                if front.tunnel_activity is not None:
                    front.tunnel_activity()
            return
        if front is None:
            # Bytes on an idle pooled connection belong to no request.
            self.close(abort=True)
            return
        self.received = True
        self.reader.receive(data)
        front.response_data()

    def readConnectionLost(self) -> None:
        self.read_closed = True
        front = self.front
        if self.tunnel:
            front.tunnel_read_closed(self)
            return
        self.reader.receive_eof()
        if front is not None:
            front.response_data()
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        if self.tunnel and self.front is not None:
            self.front.tunnel_write_closed(self)

    def connectionLost(self, reason=None) -> None:
        self.alive = False
        front = self.front
        if front is not None:
            front.backend_lost(self, reason)
        elif self.pool is not None:
            self.pool.discard(self)

    # -- used by the pool and the front -------------------------------------
    def usable(self) -> bool:
        return self.alive and not self.read_closed and not self.transport.disconnecting

    def close(self, abort: bool = False) -> None:
        if not self.alive:
            return
        self.front = None
        unregister(self.transport)
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def __repr__(self) -> str:
        return f"<HttpBack {self.key!r}>"


class _BackFactory(ClientFactory):
    noisy = False

    def __init__(self, d: defer.Deferred, key, max_head: int) -> None:
        self.d = d
        self.key = key
        self.max_head = max_head

    def buildProtocol(self, addr):
        proto = HttpBack(self.key, self.max_head)
        proto.factory = self
        proto.on_connect = self.d
        return proto

    def clientConnectionFailed(self, connector, reason) -> None:
        if not self.d.called:
            self.d.errback(reason)


_LOCALHOST_ADDRS = ("127.0.0.1", "::1")


def connect_backend(reactor, host: str, port: int, timeout: float, max_head: int, key=None) -> defer.Deferred:
    """Connect to ``host:port``; fire with a connected ``HttpBack``.

    ``localhost`` tries 127.0.0.1 and then ``::1`` when refused (SPEC §4: many
    dev servers bind only the IPv6 loopback).  Host names other than localhost
    are resolved by Twisted's resolver.  The Deferred can be cancelled.
    """
    key = key if key is not None else (host, port)
    if host.startswith("/"):
        return _connect_unix(reactor, host, timeout, max_head, key)
    if host.lower() == "localhost":
        return _connect_first(reactor, _LOCALHOST_ADDRS, port, timeout, max_head, key)
    return _connect_one(reactor, host, port, timeout, max_head, key)


def _connect_unix(reactor, path: str, timeout: float, max_head: int, key) -> defer.Deferred:
    """A UNIX-socket backend (a server process's ``unix_socket``)."""
    connector = None

    def cancel(d):
        if connector is not None:
            connector.stopConnecting()

    d = defer.Deferred(cancel)
    connector = reactor.connectUNIX(path, _BackFactory(d, key, max_head), timeout=max(1, int(timeout)))
    return d


def _connect_one(reactor, host: str, port: int, timeout: float, max_head: int, key) -> defer.Deferred:
    connector = None

    def cancel(d):
        if connector is not None:
            connector.stopConnecting()

    d = defer.Deferred(cancel)
    connector = connect_tcp(reactor, host, port, _BackFactory(d, key, max_head), timeout)
    return d


def _connect_first(reactor, hosts, port: int, timeout: float, max_head: int, key) -> defer.Deferred:
    """Try each address in turn while the previous one is refused."""
    current: list[defer.Deferred] = []
    started = reactor.seconds()

    def cancel(d):
        if current:
            current[0].cancel()

    result = defer.Deferred(cancel)

    def attempt(i: int) -> None:
        remaining = max(0.1, timeout - (reactor.seconds() - started))
        d = _connect_one(reactor, hosts[i], port, remaining, max_head, key)
        current[:] = [d]

        def ok(proto):
            if not result.called:
                result.callback(proto)
            else:
                proto.close(abort=True)

        def failed(f):
            if result.called:
                return None
            if f.check(error.ConnectionRefusedError) and i + 1 < len(hosts):
                attempt(i + 1)
            else:
                result.errback(f)
            return None

        d.addCallbacks(ok, failed)

    attempt(0)
    return result


def connect_error_status(failure) -> tuple[int, str]:
    """Map a connect failure to (status, message) — SPEC §3: refused → 502, timeout → 504."""
    if failure.check(error.TimeoutError, defer.TimeoutError):
        return 504, "The backend did not accept the connection in time."
    if failure.check(error.ConnectionRefusedError):
        return 502, "Nothing is listening on the backend port (connection refused)."
    if failure.check(error.DNSLookupError):
        return 502, "The backend host name could not be resolved."
    return 502, "Could not connect to the backend."

