"""Every open client connection of one process: limits, deadlines, drain.

``ConnectionTracker`` enforces ``--max-connections`` at accept time and runs
the one timer that checks every connection's deadline (header, idle and
lingering timeouts) — one timer for all connections instead of one per
connection keeps an idle connection small.  On SIGTERM it drains: idle
connections close at once, busy ones after their exchange, the rest are cut
after ``--drain-timeout``.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()


class ConnectionTracker:
    """Every open client connection of this process, and their deadlines."""

    def __init__(self, clock, max_connections: int, pool=None, interval: float = 1.0) -> None:
        self.clock = clock
        self.max_connections = max_connections
        self.pool = pool
        self.interval = interval
        self.connections: set = set()
        self._loop: LoopingCall | None = None
        self.draining = False
        self._drained: defer.Deferred | None = None
        self._drain_deadline = None

    def admit(self) -> bool:
        return len(self.connections) < self.max_connections

    def add(self, conn) -> None:
        self.connections.add(conn)

    def remove(self, conn) -> None:
        self.connections.discard(conn)
        if self._drained is not None and not self.connections:
            self._finish_drain()

    def drain(self, timeout: float) -> defer.Deferred:
        """Graceful stop (SIGTERM): idle connections close now, in-flight exchanges
        finish and then close; whatever is left after ``timeout`` is cut."""
        self.draining = True
        for conn in list(self.connections):
            conn.begin_drain()
        if not self.connections:
            return defer.succeed(None)
        self._drained = defer.Deferred()
        self._drain_deadline = self.clock.callLater(timeout, self._cut)
        return self._drained

    def _cut(self) -> None:
        self._drain_deadline = None
        if self.connections:
            log.info("drain timeout: cutting {n} connection(s)", n=len(self.connections))
        for conn in list(self.connections):
            conn.abort()
        self._finish_drain()

    def _finish_drain(self) -> None:
        d, self._drained = self._drained, None
        if self._drain_deadline is not None and self._drain_deadline.active():
            self._drain_deadline.cancel()
        self._drain_deadline = None
        if d is not None:
            d.callback(None)

    def start(self) -> None:
        if self._loop is None:
            self._loop = LoopingCall(self.sweep)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def sweep(self) -> None:
        now = self.clock.seconds()
        for conn in [c for c in self.connections if c.deadline <= now]:
            try:
                conn.timed_out(now)
            except Exception:  # noqa: BLE001 - one bad connection must not stop the sweep
                log.failure("timeout handling failed for {conn}", conn=conn)
        if self.pool is not None:
            self.pool.sweep()
