"""One backend connection: reads responses for whichever client exchange owns it.

``HttpBack`` is deliberately thin.  It parses nothing itself; it feeds bytes
into its ``ResponseReader`` and tells its current front (the client connection
that borrowed it) that there is something to read.  Between exchanges it sits
in the ``BackendPool`` with ``front`` = None.  After a 101 it is one side of the
front's ``Relay`` and reports its events there.
"""

from __future__ import annotations


from twisted.internet import defer, error
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import Logger
from zope.interface import implementer

from ..http1.reader import ResponseReader
from ..net.connect import Outbound, connect
from ..net.fasttcp import set_nodelay
from ..net.gate import PauseGate, unregister
from ..net.relay import Side
from ..routing.addresses import Address

log = Logger()


@implementer(IHalfCloseableProtocol)
class HttpBack(Outbound):
    def __init__(self, key, max_head: int) -> None:
        self.key = key
        self.reader = ResponseReader(max_head)
        self.front = None
        self.gate: PauseGate | None = None
        self.side: Side | None = None  # set when the connection becomes a tunnel
        self.received = False
        self.alive = False
        self.read_closed = False
        self.idle_since = 0.0
        self.pool = None

    # -- Twisted callbacks -------------------------------------------------
    def connectionMade(self) -> None:
        self.alive = True
        self.gate = PauseGate(self.transport)
        set_nodelay(self.transport)
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        side = self.side
        if side is not None:
            side.relay.received(side, data)
            return
        front = self.front
        if front is None:
            # Bytes on an idle pooled connection belong to no request.
            self.close(abort=True)
            return
        self.received = True
        self.reader.receive(data)
        front.response_data()

    def readConnectionLost(self) -> None:
        self.read_closed = True
        side = self.side
        if side is not None:
            side.relay.read_ended(side)
            return
        self.reader.receive_eof()
        if self.front is not None:
            self.front.response_data()
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        side = self.side
        if side is not None:
            side.relay.write_closed(side)

    def connectionLost(self, reason=None) -> None:
        self.alive = False
        side, self.side = self.side, None
        front = self.front
        if side is not None:
            side.relay.lost(side)
        elif front is not None:
            front.backend_lost(self, reason)
        elif self.pool is not None:
            self.pool.discard(self)

    # -- used by the pool and the front -------------------------------------
    def tls_failed(self, reason) -> bool:
        """Did this connection end in a failed TLS handshake or verification?"""
        if reason is None or len(self.key) < 3:
            return False
        from OpenSSL.SSL import Error as TLSError
        from service_identity import VerificationError

        return bool(reason.check(TLSError, VerificationError))

    def usable(self) -> bool:
        return self.alive and not self.read_closed and not self.transport.disconnecting

    def make_idle(self) -> None:
        """Between exchanges: read again (an idle pooled connection must notice a
        close), whatever paused it during the last response."""
        unregister(self.transport)
        self.gate.reset()

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


def connect_backend(reactor, host: str, port: int, timeout: float, max_head: int, key=None, tls=None) -> defer.Deferred:
    """Connect to ``host:port`` (a ``host`` that is an absolute path is a unix
    socket), over TLS if ``tls`` is a client connection creator; fire with a
    connected ``HttpBack``.  The address rules (localhost is 127.0.0.1, then
    ::1) are ``net.connect``'s."""
    key = key if key is not None else (host, port)
    address = Address.unix(host) if host.startswith("/") else Address(host, port)
    return connect(reactor, address, lambda: HttpBack(key, max_head), timeout, tls)


def connect_error_status(failure) -> tuple[int, str]:
    """Map a connect failure to (status, message) — SPEC §3: refused → 502, timeout → 504."""
    if failure.check(error.TimeoutError, defer.TimeoutError):
        return 504, "The backend did not accept the connection in time."
    if failure.check(error.ConnectionRefusedError):
        return 502, "Nothing is listening on the backend port (connection refused)."
    if failure.check(error.DNSLookupError):
        return 502, "The backend host name could not be resolved."
    return 502, "Could not connect to the backend."

