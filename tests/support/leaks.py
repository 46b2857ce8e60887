"""Leak checks: the proxy holds no connections or file descriptors beyond a
baseline (polled with ``waiting.wait_until``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .waiting import wait_until


@dataclass
class Baseline:
    """What an idle proxy holds: established TCP sockets and open fds."""

    connections: int
    fds: int

    @classmethod
    def settle(cls, proxy, timeout: float = 5.0) -> "Baseline":
        """Measure once the proxy holds no TCP connection (after pooled ones closed)."""
        if not wait_until(lambda: proxy.tcp_connections() == 0, timeout):
            raise AssertionError(f"proxy still holds {proxy.tcp_connections()} connections")
        return cls(0, proxy.fd_count())

    def assert_reached(self, proxy, timeout: float = 5.0, what: str = "") -> None:
        """The proxy gets back to this baseline within ``timeout`` (no leaked sockets)."""
        ok = wait_until(
            lambda: proxy.tcp_connections() <= self.connections and proxy.fd_count() <= self.fds, timeout
        )
        assert ok, (
            f"{what}: proxy holds {proxy.tcp_connections()} TCP connections / {proxy.fd_count()} fds "
            f"after {timeout}s; baseline {self.connections} / {self.fds}"
        )


def remote_ports(pid: int) -> list[int]:
    """Remote ports of the non-listening TCP sockets process ``pid`` holds (sorted)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] in inodes and fields[3] != "0A":
                    ports.append(int(fields[2].rsplit(":", 1)[1], 16))
    return sorted(ports)
