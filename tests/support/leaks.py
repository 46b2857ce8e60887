"""Waiting for conditions with a deadline, and checking a proxy process leaked nothing.

A proxy that forgets a socket after an error keeps its fd (often in CLOSE_WAIT)
forever; these helpers poll the proxy's ``/proc`` view until it is back to
the numbers taken before a test, and fail with both numbers if it never is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .procs import ProxyProcess


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true after {timeout}s")
        time.sleep(interval)


class ProxyBaseline:
    """The proxy's open TCP connections and fds at one moment."""

    def __init__(self, proxy: ProxyProcess) -> None:
        self.proxy = proxy
        self.tcp = proxy.tcp_connections()
        self.fds = proxy.fd_count()

    def assert_back(self, timeout: float = 5.0) -> None:
        """Wait until the proxy holds no more connections/fds than at the baseline
        (fewer is fine: pooled backend connections may have expired meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            tcp, fds = self.proxy.tcp_connections(), self.proxy.fd_count()
            if tcp <= self.tcp and fds <= self.fds:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"proxy leaked: {tcp} TCP connections (baseline {self.tcp}), {fds} fds (baseline {self.fds})"
                )
            time.sleep(0.02)
