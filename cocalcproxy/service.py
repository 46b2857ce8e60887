"""Composition helpers shared by the roles: config from options, the connection
tracker and backend pool, listeners, graceful drain on shutdown.

With ``cli`` this is the only place that touches the global reactor (the roles
pass it in); everything built here takes the reactor as an argument, so tests
build the same objects on a fake clock.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from twisted.application.service import MultiService, Service
from twisted.logger import Logger

from .net.listen import ListenerService
from .net.pool import BackendPool
from .proxy.factory import ConnectionTracker, ProxyConfig, ProxyFactory

log = Logger()


def proxy_config(options) -> ProxyConfig:
    return ProxyConfig(
        connect_timeout=options["connect-timeout"],
        header_timeout=options["header-timeout"],
        idle_timeout=options["idle-timeout"],
        max_header_bytes=options["max-header-bytes"],
        max_connections=options["max-connections"],
        trusted_proxies=tuple(options["trusted-proxy"]),
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
            except Exception:  # noqa: BLE001 - an operator's file: keep running on the old one
                log.failure("SIGHUP: reloading {what} failed; keeping the previous settings", what=what)
            else:
                log.info("SIGHUP: reloaded {what}", what=what)


def tracked(reactor, config: ProxyConfig, drain_timeout: float):
    """A ``MultiService`` with the tracker service in it, plus the tracker and pool.

    It also holds the ``ReloadService`` (``top.getServiceNamed("reload")``)."""
    pool = BackendPool(reactor)
    tracker = ConnectionTracker(reactor, config.max_connections, pool, sweep_interval(config))
    top = MultiService()
    TrackerService(tracker, pool, drain_timeout).setServiceParent(top)
    ReloadService(reactor).setServiceParent(top)
    return top, tracker, pool


def add_listeners(top, options, reactor, config, router, tracker, pool, **factory_kw) -> None:
    for description, endpoint in options["endpoints"]:
        kw = dict(factory_kw)
        if description.split(":", 1)[0] in ("ssl", "tls") and "proto" not in kw:
            kw["proto"] = b"https"  # X-Forwarded-Proto follows the listener (SPEC §3)
        factory = ProxyFactory(reactor, config, router, tracker, pool, **kw)
        ListenerService(endpoint, factory, description).setServiceParent(top)


__all__ = ["add_listeners", "proxy_config", "tracked", "ReloadService", "TrackerService"]
