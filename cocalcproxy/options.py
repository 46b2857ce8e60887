"""Options every role shares (SPEC §2) and the converters that validate them.

``postOptions`` validates everything it can (numbers, CIDRs, endpoint strings),
so a mistake is a usage error naming the option, never a traceback at startup.
"""

from __future__ import annotations

import ipaddress

from twisted.python import usage

from . import limits
from .routing.paths import normalize_base_url


def _positive_float(name: str):
    def convert(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise usage.UsageError(f"--{name}: not a number: {value!r}") from None
        if not number > 0:
            raise usage.UsageError(f"--{name}: must be greater than 0, got {value!r}")
        return number

    return convert


def _positive_int(name: str):
    def convert(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise usage.UsageError(f"--{name}: not a whole number: {value!r}") from None
        if number < 1:
            raise usage.UsageError(f"--{name}: must be at least 1, got {value!r}")
        return number

    return convert


class CommonOptions(usage.Options):
    """Options every role accepts (SPEC §2)."""

    default_listen = "tcp:8080"
    default_trusted = ("127.0.0.0/8", "::1")

    optParameters = [
        ["base-url", None, "/", "Prefix every route lives under (normalised to start and end with /)."],
        ["connect-timeout", None, limits.CONNECT_TIMEOUT, "Backend connect timeout in seconds (then 504).", _positive_float("connect-timeout")],
        ["header-timeout", None, limits.HEADER_TIMEOUT, "Seconds a client has to send a complete request head (then 408).", _positive_float("header-timeout")],
        ["idle-timeout", None, limits.IDLE_TIMEOUT, "Seconds an idle keep-alive client connection is kept open.", _positive_float("idle-timeout")],
        ["max-header-bytes", None, limits.MAX_HEADER_BYTES, "Largest request head (request line + headers) in bytes (then 431).", _positive_int("max-header-bytes")],
        ["max-connections", None, limits.MAX_CONNECTIONS, "Client connections beyond this are closed at accept.", _positive_int("max-connections")],
        ["drain-timeout", None, limits.DRAIN_TIMEOUT, "On SIGTERM, seconds in-flight requests get to finish before connections are cut.", _positive_float("drain-timeout")],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["trusted-proxy"] = []

    def opt_listen(self, description: str) -> None:
        """Twisted server endpoint string to listen on (repeatable), e.g. tcp:8080:interface=127.0.0.1, unix:/run/x.sock."""
        self["listen"].append(description)

    def opt_trusted_proxy(self, cidr: str) -> None:
        """Peer network whose X-Forwarded-* headers are believed (repeatable; replaces the default)."""
        try:
            self["trusted-proxy"].append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise usage.UsageError(f"--trusted-proxy: not an IP address or CIDR network: {cidr!r}") from None

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [self.default_listen]
        if not self["trusted-proxy"]:
            self["trusted-proxy"] = [ipaddress.ip_network(n) for n in self.default_trusted]
        base = self["base-url"]
        if not isinstance(base, str) or any(ch in base for ch in "?#% \t\r\n"):
            raise usage.UsageError(f"--base-url: must be a plain path, got {base!r}")
        self["base-url"] = normalize_base_url(base)
        from twisted.internet import reactor

        from .net.listen import ListenError, parse_listen

        endpoints = []
        for description in self["listen"]:
            try:
                endpoints.append((description, parse_listen(reactor, description)))
            except ListenError as e:
                raise usage.UsageError(str(e)) from None
        self["endpoints"] = endpoints
