"""Idle keep-alive backend connections, reused per target address.

Only connections whose last exchange ended cleanly (complete request, complete
self-delimited response, both sides willing to keep the connection) come back
here.  An idle connection keeps reading, so a backend that closes it is noticed
and the connection is dropped from the pool at once; one that sends unsolicited
bytes is closed (its framing can no longer be trusted).
"""

from __future__ import annotations

from collections.abc import Hashable

from .. import limits


class BackendPool:
    def __init__(
        self,
        clock,
        max_idle_per_target: int = limits.POOL_MAX_IDLE_PER_TARGET,
        idle_timeout: float = limits.POOL_IDLE_TIMEOUT,
    ) -> None:
        self.clock = clock
        self.max_idle = max_idle_per_target
        self.idle_timeout = idle_timeout
        self.idle: dict[Hashable, list] = {}

    def get(self, key: Hashable):
        """A live idle connection for ``key`` (most recently used first), or None."""
        conns = self.idle.get(key)
        while conns:
            conn = conns.pop()
            if conn.usable():
                if not conns:
                    del self.idle[key]
                return conn
        if conns is not None and not conns:
            self.idle.pop(key, None)
        return None

    def put(self, conn) -> None:
        key = conn.key
        conns = self.idle.setdefault(key, [])
        if len(conns) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = self.clock.seconds()
        conns.append(conn)

    def discard(self, conn) -> None:
        conns = self.idle.get(conn.key)
        if conns and conn in conns:
            conns.remove(conn)
            if not conns:
                del self.idle[conn.key]

    def sweep(self) -> None:
        """Close connections idle for longer than ``idle_timeout``."""
        deadline = self.clock.seconds() - self.idle_timeout
        for key in list(self.idle):
            conns = self.idle[key]
            keep = [c for c in conns if c.idle_since > deadline]
            for c in conns:
                if c.idle_since <= deadline:
                    c.close()
            if keep:
                self.idle[key] = keep
            else:
                self.idle.pop(key, None)

    def close_all(self) -> None:
        for conns in list(self.idle.values()):
            for c in list(conns):
                c.close()
        self.idle.clear()

    def __len__(self) -> int:
        return sum(len(c) for c in self.idle.values())
