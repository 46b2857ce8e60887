"""The one connector: from an ``Address`` to a connected protocol.

Every outgoing connection of the proxy is made here — HTTP backends, bridge
targets, readiness probes — so "localhost" means the same everywhere:

- ``localhost`` is 127.0.0.1, then ``::1`` when that is refused (SPEC §4: many
  dev servers bind only the IPv6 loopback);
- IP literals get the write-through TCP transport (``fasttcp``), with no
  resolver hop (Twisted's ``HostnameEndpoint`` resolves even a literal in a
  thread, STYLE E13);
- other names go through ``HostnameEndpoint``; unix sockets through
  ``connectUNIX``.

Two forms.  ``connect(reactor, address, build, timeout)`` is for our own
protocols (subclasses of ``Outbound``): the Deferred fires from
``connectionMade``, no wrapper protocol sits in the data path, and it can be
cancelled.  ``AddressEndpoint`` is an ``IStreamClientEndpoint`` for code that
takes endpoints (treq's ``Agent`` in the readiness probes); it remembers which
address answered, for the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet import defer, error
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from ..routing.addresses import Address, ip_literal
from .fasttcp import connect_tcp

LOCALHOST = ("127.0.0.1", "::1")


def addresses_for(host: str) -> tuple[str, ...]:
    """The addresses tried, in order, for ``host``."""
    return LOCALHOST if host.lower() == "localhost" else (host,)


def first_refused_next(attempts: Sequence[Callable[[], defer.Deferred]]) -> defer.Deferred:
    """Run ``attempts`` in order, moving on only while they are refused.

    Fires with the first success, or fails with the last failure (any failure
    other than "refused" ends the search).  Cancelling cancels the attempt in flight.
    """
    current: list[defer.Deferred] = []
    result = defer.Deferred(lambda _: current[0].cancel() if current else None)

    def attempt(i: int) -> None:
        d = attempts[i]()
        current[:] = [d]
        d.addCallbacks(succeeded, failed, errbackArgs=(i,))

    def succeeded(value):
        if result.called:
            close = getattr(getattr(value, "transport", None), "abortConnection", None)
            if close is not None:
                close()  # cancelled meanwhile: nobody wants this connection
            return None
        result.callback(value)
        return None

    def failed(failure, i: int) -> None:
        if result.called:
            return None
        if failure.check(error.ConnectionRefusedError) and i + 1 < len(attempts):
            attempt(i + 1)
        else:
            result.errback(failure)
        return None

    attempt(0)
    return result


class Outbound(Protocol):
    """Base of the protocols ``connect`` makes: announces itself when connected."""

    made: defer.Deferred | None = None

    def connectionMade(self) -> None:
        d, self.made = self.made, None
        if d is not None and not d.called:
            d.callback(self)


class _OutboundFactory(ClientFactory):
    noisy = False

    def __init__(self, build: Callable[[], Outbound], d: defer.Deferred) -> None:
        self.build = build
        self.d = d

    def buildProtocol(self, addr):
        proto = self.build()
        proto.factory = self
        proto.made = self.d
        return proto

    def clientConnectionFailed(self, connector, reason) -> None:
        if not self.d.called:
            self.d.errback(reason)


class _PlainFactory(Factory):
    """For endpoints, which announce the connection themselves."""

    noisy = False

    def __init__(self, build: Callable[[], Protocol]) -> None:
        self.build = build

    def buildProtocol(self, addr):
        proto = self.build()
        proto.factory = self
        return proto


def _connect_one(reactor, host: str, port: int, path: str | None, build, timeout: float, tls=None) -> defer.Deferred:
    connector = None

    def cancel(_d):
        if connector is not None:
            connector.stopConnecting()

    d = defer.Deferred(cancel)
    factory = _OutboundFactory(build, d)
    if tls is not None:
        factory = TLSMemoryBIOFactory(tls, True, factory)
    try:
        if path is not None:
            connector = reactor.connectUNIX(path, factory, timeout=max(1, int(timeout)))
        else:
            connector = connect_tcp(reactor, host, port, factory, timeout)
    except Exception:  # noqa: BLE001 - report as a failed connect, like Twisted's endpoints do
        return defer.fail()
    return d


def connect(reactor, address: Address, build: Callable[[], Outbound], timeout: float, tls=None) -> defer.Deferred:
    """Connect to ``address``; fire with the ``Outbound`` protocol ``build()`` made.

    ``tls`` (a client connection creator, ``net.tls.client_creator``) wraps the
    connection in TLS; the protocol is announced before the handshake ends, and
    a failed verification arrives as its ``connectionLost``."""
    if address.path is not None:
        return _connect_one(reactor, "", 0, address.path, build, timeout, tls)
    hosts = addresses_for(address.host)
    if ip_literal(hosts[0]) is None:  # a name: Twisted resolves it (happy eyeballs)
        endpoint = HostnameEndpoint(reactor, address.host, address.port, timeout=timeout)
        factory = _PlainFactory(build)
        return endpoint.connect(TLSMemoryBIOFactory(tls, True, factory) if tls is not None else factory)
    started = reactor.seconds()

    def attempt(host: str):
        def run():
            remaining = max(0.1, timeout - (reactor.seconds() - started))
            return _connect_one(reactor, host, address.port, None, build, remaining, tls)

        return run

    return first_refused_next([attempt(h) for h in hosts])


def connect_target(reactor, target, build: Callable[[], Outbound], timeout: float) -> defer.Deferred:
    """``connect`` for an ``Address``; any other ``IStreamClientEndpoint`` (a
    ``tls:`` bridge target) connects through its own ``connect``."""
    if isinstance(target, Address):
        return connect(reactor, target, build, timeout)
    return defer.maybeDeferred(target.connect, _PlainFactory(build))


@implementer(IStreamClientEndpoint)
class AddressEndpoint:
    """An endpoint for ``address`` with the same address rules as ``connect``."""

    def __init__(self, reactor, address: Address, timeout: float) -> None:
        self.reactor = reactor
        self.address = address
        self.timeout = timeout
        self.connected_to: str | None = None  # what answered, e.g. "[::1]:8000"

    def _endpoints(self) -> list[tuple[str, object]]:
        a = self.address
        if a.path is not None:
            return [(a.path, UNIXClientEndpoint(self.reactor, a.path, timeout=self.timeout))]
        out = []
        for host in addresses_for(a.host):
            where = str(Address(host, a.port))
            if ip_literal(host) is None:
                out.append((where, HostnameEndpoint(self.reactor, host, a.port, timeout=self.timeout)))
            else:
                cls = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
                out.append((where, cls(self.reactor, host, a.port, timeout=self.timeout)))
        return out

    def connect(self, factory) -> defer.Deferred:
        def attempt(where: str, endpoint):
            def run():
                d = endpoint.connect(factory)
                d.addCallback(self._answered, where)
                return d

            return run

        return first_refused_next([attempt(w, e) for w, e in self._endpoints()])

    def _answered(self, proto, where: str):
        self.connected_to = where
        return proto

    def __repr__(self) -> str:
        return f"<AddressEndpoint {self.address}>"


__all__ = ["AddressEndpoint", "LOCALHOST", "Outbound", "addresses_for", "connect", "connect_target",
           "first_refused_next"]
