"""The listening side: one ``ProxyFactory`` per listener.

It builds an ``HttpFront`` per accepted connection (or none, beyond
``--max-connections``: the tracker says) and gives it what it needs: the
settings, the role's router, the backend pool, facts about the peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from .. import limits
from ..routing.headers import Peer
from ..routing.types import Local, Route
from . import pages
from .back import connect_backend
from .front import HttpFront
from .tracker import ConnectionTracker

log = Logger()

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_TRUSTED = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class ProxyConfig:
    """Per-process settings every role shares (SPEC §2)."""

    connect_timeout: float = limits.CONNECT_TIMEOUT
    header_timeout: float = limits.HEADER_TIMEOUT
    idle_timeout: float = limits.IDLE_TIMEOUT
    max_header_bytes: int = limits.MAX_HEADER_BYTES
    max_response_head: int = limits.MAX_RESPONSE_HEAD
    max_connections: int = limits.MAX_CONNECTIONS
    trusted_proxies: tuple[IPNetwork, ...] = field(default=DEFAULT_TRUSTED)


class ProxyFactory(Factory):
    """Builds the client-side protocol for one listener."""

    noisy = False

    def __init__(
        self,
        reactor,
        config: ProxyConfig,
        router: Callable[[object], Route],
        tracker: ConnectionTracker,
        pool,
        proto: bytes = b"http",
        local_pages: Callable | None = None,
        connect: Callable | None = None,
        activity: Callable[[], None] | None = None,
    ) -> None:
        self.reactor = reactor
        self.clock = reactor
        self.config = config
        self.router = router
        self.tracker = tracker
        self.pool = pool
        self.proto = proto
        self.local_pages = local_pages
        #: called (no arguments) when a backend answers or tunnel data passes (--activity-file)
        self.activity = activity
        #: connect(host, port, key) -> Deferred[HttpBack]; injectable for tests.
        self.connect = connect or self._connect
        self._peers: dict[str, Peer] = {}
        self._port: bytes | None = None

    def buildProtocol(self, addr):
        tracker = self.tracker
        if not tracker.admit():
            return None  # the listening port closes the socket at once
        proto = HttpFront(self)
        tracker.add(proto)
        return proto

    def _connect(self, host: str, port: int, key):
        """``key`` is the pool key: ``(host, port)``, or ``(host, port, tls)`` for a TLS backend."""
        cfg = self.config
        tls = key[2] if len(key) > 2 else None
        return connect_backend(self.reactor, host, port, cfg.connect_timeout, cfg.max_response_head, key, tls)

    def route(self, req) -> Route:
        return self.router(req)

    def peer_for(self, transport) -> Peer:
        """The (cached) ``Peer`` for a connection: address, trusted or not, listener facts."""
        port = self._port
        if port is None:
            host = transport.getHost()
            port = self._port = str(getattr(host, "port", "") or "").encode()
        addr = transport.getPeer()
        if isinstance(addr, (IPv4Address, IPv6Address)):
            key = addr.host
        else:
            key = ""
        peer = self._peers.get(key)
        if peer is None:
            if len(self._peers) > 4096:
                self._peers.clear()
            peer = self._peers[key] = Peer(key.encode(), self._trusted(key), self.proto, port)
        return peer

    def _trusted(self, host: str) -> bool:
        if not host:
            return True  # a UNIX-socket peer is a local process
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.config.trusted_proxies)

    def local_response(self, route: Local, req, **opts) -> bytes:
        if route.name == "healthz":
            return pages.response(200, b"ok\n", b"text/plain; charset=utf-8", **opts)
        if self.local_pages is not None:
            page = self.local_pages(route, req)
            if page is not None:
                status, body, ctype = page
                return pages.response(status, body, ctype, **opts)
        body, ctype = pages.error_body(404, "No route matches this URL.", pages.wants_json(req.get(b"accept")))
        return pages.response(404, body, ctype, **opts)
