"""The services every role is built from: the connection tracker and backend
pool (with graceful drain on SIGTERM), SIGHUP reloading, and the listeners.

Everything here takes the reactor as an argument (only ``cli`` imports the
global one), so tests build the same objects on a fake clock.  A role's
``make_service(config, reactor)`` calls ``RoleServices`` once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.endpoints import wrapServerTLS
from twisted.logger import Logger

from ..net.listen import ListenerService, parse_listen
from ..net.pool import BackendPool
from ..net.tls import ReloadableServerTLS
from ..proxy.factory import ProxyConfig, ProxyFactory
from ..proxy.tracker import ConnectionTracker
from .common import CommonConfig

log = Logger()


def proxy_config(common: CommonConfig) -> ProxyConfig:
    """What the HTTP front needs of the common options."""
    return ProxyConfig(
        connect_timeout=common.connect_timeout,
        header_timeout=common.header_timeout,
        idle_timeout=common.idle_timeout,
        max_header_bytes=common.max_header_bytes,
        max_connections=common.max_connections,
        trusted_proxies=common.trusted_proxies,
    )


def sweep_interval(config: ProxyConfig) -> float:
    """How often deadlines are checked: timeouts fire within this of their deadline."""
    return max(0.05, min(1.0, config.header_timeout / 4, config.idle_timeout / 4))


class TrackerService(Service):
    """Runs the tracker's sweep; on stop, drains client connections and closes the pool.

    It is the first child of the role's ``MultiService``, so it stops last:
    the listeners have already stopped accepting when the drain begins.
    """

    def __init__(self, tracker: ConnectionTracker, pool: BackendPool, drain_timeout: float) -> None:
        self.tracker = tracker
        self.pool = pool
        self.drain_timeout = drain_timeout

    def startService(self) -> None:
        super().startService()
        self.tracker.start()

    def stopService(self):
        super().stopService()
        d = self.tracker.drain(self.drain_timeout)

        def done(_):
            self.tracker.stop()
            self.pool.close_all()

        d.addBoth(done)
        return d


class ReloadService(Service):
    """SIGHUP re-reads what can change without a restart (SPEC §2), keeping every
    connection.  Roles register their reloaders with ``add``; a reloader that
    fails is logged and the old settings stay.  Without this handler SIGHUP's
    default action would end the process."""

    name = "reload"

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.reloaders: list[tuple[str, Callable[[], None]]] = []
        self._previous = None

    def add(self, what: str, reloader: Callable[[], None]) -> None:
        self.reloaders.append((what, reloader))

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._on_signal)

    def stopService(self):
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None
        return super().stopService()

    def _on_signal(self, signum, frame) -> None:
        self.reactor.callFromThread(self.reload)

    def reload(self) -> None:
        if not self.reloaders:
            log.info("SIGHUP: nothing to reload for this role")
        for what, reloader in self.reloaders:
            try:
                reloader()
            except Exception as e:  # noqa: BLE001 - an operator's file: keep running on the old one
                log.error("SIGHUP: reloading {what} failed; keeping the previous settings: {error}", what=what,
                          error=str(e) or type(e).__name__)
            else:
                log.info("SIGHUP: reloaded {what}", what=what)


class RoleServices:
    """One role's running parts: ``top`` (a ``MultiService``) holds the tracker
    (first, so it stops last: the listeners have stopped accepting when the
    drain begins), the reloader and, after ``listen``, one listener per
    ``--listen``."""

    def __init__(self, reactor, common: CommonConfig) -> None:
        self.reactor = reactor
        self.common = common
        self.config = proxy_config(common)
        self.pool = BackendPool(reactor)
        self.tracker = ConnectionTracker(reactor, self.config.max_connections, self.pool,
                                         sweep_interval(self.config))
        self.top = MultiService()
        TrackerService(self.tracker, self.pool, common.drain_timeout).setServiceParent(self.top)
        self.reloader = ReloadService(reactor)
        self.reloader.setServiceParent(self.top)

    def listen(self, router, **factory_kw) -> None:
        """A ``ProxyFactory`` and a listener for every ``--listen`` endpoint;
        with ``--https-*``, TLS on every ``tcp:`` one (SPEC §2)."""
        tls = self._tls()
        for description in self.common.listen:
            kind = description.split(":", 1)[0].lower()
            endpoint = parse_listen(self.reactor, description)
            https = kind in ("ssl", "tls")
            if tls is not None and kind in ("tcp", "tcp6"):
                endpoint = wrapServerTLS(tls, endpoint)
                https = True
            kw = dict(factory_kw)
            if https and "proto" not in kw:
                kw["proto"] = b"https"  # X-Forwarded-Proto follows the listener (SPEC §3)
            factory = ProxyFactory(self.reactor, self.config, router, self.tracker, self.pool, **kw)
            ListenerService(endpoint, factory, description).setServiceParent(self.top)

    def _tls(self) -> ReloadableServerTLS | None:
        common = self.common
        if not common.tls:
            return None
        tls = ReloadableServerTLS(common.https_key, common.https_cert, common.tls_client_ca)
        self.reloader.add("TLS key and certificate", tls.reload)
        return tls


class StopInOrder(MultiService):
    """Stops its children one after the other, last added first (the project
    role: the proxy drains its clients, then the server processes are stopped
    and waited for)."""

    def stopService(self):
        Service.stopService(self)
        d = defer.succeed(None)
        for child in reversed(list(self)):
            d.addBoth(lambda _, child=child: child.stopService())
        return d


__all__ = ["ReloadService", "RoleServices", "StopInOrder", "TrackerService", "proxy_config"]
