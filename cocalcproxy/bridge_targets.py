"""Where a bridge connects: target strings → client endpoints.

``--target`` and token-file entries name a raw TCP or unix-socket server.
Twisted's ``clientFromString("tcp:…")`` always builds an IPv4 endpoint, so TCP
targets are parsed here: an IPv4 literal or ``localhost`` gets our
write-through TCP transport (``net/fasttcp``), an IPv6 literal the same over
IPv6, a host name Twisted's ``HostnameEndpoint``.  Other endpoint types
(``tls:``, ``ssl:``…) go to ``clientFromString`` unchanged.
"""

from __future__ import annotations

import ipaddress

from twisted.internet import defer, error
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, _WrappingFactory, clientFromString
from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import implementer

from .net.fasttcp import connect_tcp


class TargetError(ValueError):
    """A target string that names no endpoint; the message says why."""


@implementer(IStreamClientEndpoint)
class FastTCPClientEndpoint:
    """``TCP4ClientEndpoint``/``TCP6ClientEndpoint`` for an IP literal, with a
    write-through transport (small writes leave at once, no extra reactor turn)."""

    def __init__(self, reactor, host: str, port: int, timeout: float = 30) -> None:
        self._reactor = reactor
        self.host = host
        self.port = port
        self.timeout = timeout

    def connect(self, factory) -> defer.Deferred:
        wrapping = _WrappingFactory(factory)
        try:
            connect_tcp(self._reactor, self.host, self.port, wrapping, self.timeout)
        except Exception:  # noqa: BLE001 - report as a failed connect, like Twisted's endpoints
            return defer.fail()
        return wrapping._onConnection

    def __repr__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"<tcp {host}:{self.port}>"


@implementer(IStreamClientEndpoint)
class FirstRefusedNext:
    """Try endpoints in order, moving on only when one is refused (``localhost``:
    127.0.0.1 first, then ``::1`` — servers that bind only the IPv6 loopback work)."""

    def __init__(self, endpoints) -> None:
        self.endpoints = list(endpoints)

    def connect(self, factory) -> defer.Deferred:
        current: list[defer.Deferred] = []
        result = defer.Deferred(lambda _: current[0].cancel() if current else None)

        def attempt(i: int) -> None:
            d = self.endpoints[i].connect(factory)
            current[:] = [d]
            d.addCallbacks(result.callback, failed, errbackArgs=(i,))

        def failed(failure, i: int) -> None:
            if result.called:
                return
            if failure.check(error.ConnectionRefusedError) and i + 1 < len(self.endpoints):
                attempt(i + 1)
            else:
                result.errback(failure)

        attempt(0)
        return result

    def __repr__(self) -> str:
        return f"<first of {self.endpoints!r}>"


def tcp_endpoint(reactor, host: str, port: int, timeout: float):
    """The client endpoint for ``host:port`` (IP literal, ``localhost`` or a name)."""
    if not 1 <= port <= 65535:
        raise TargetError(f"port out of range: {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return FastTCPClientEndpoint(reactor, str(ip), port, timeout)
    if not host or any(ch in host for ch in "/@ \t[]"):
        raise TargetError(f"not a host name or IP address: {host!r}")
    if host.lower() == "localhost":
        return FirstRefusedNext(
            [FastTCPClientEndpoint(reactor, "127.0.0.1", port, timeout), FastTCPClientEndpoint(reactor, "::1", port, timeout)]
        )
    return HostnameEndpoint(reactor, host, port, timeout=timeout)


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``V6:PORT`` (the last colon ends the host)."""
    host, sep, port_text = text.replace("\\:", ":").rpartition(":")
    if not sep or not host:
        raise TargetError(f"expected HOST:PORT, got {text!r}")
    if not port_text.isdigit():
        raise TargetError(f"port is not a number in {text!r}")
    return host, int(port_text)


def _keywords(rest: str) -> dict[str, str] | None:
    """``host=H:port=P[:timeout=T]`` (Twisted's keyword form; ``\\:`` escapes a colon)."""
    if "=" not in rest:
        return None
    out = {}
    parts = rest.replace("\\:", "\0").split(":")
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise TargetError(f"expected key=value, got {part.replace(chr(0), ':')!r}")
        out[key] = value.replace("\0", ":")
    return out


def parse_target(reactor, text: str, timeout: float):
    """An ``IStreamClientEndpoint`` for a ``--target`` string; ``TargetError`` if invalid.

    ``tcp:HOST:PORT``, ``tcp:[V6]:PORT``, ``tcp:host=H:port=P``, ``unix:/path``,
    ``unix:path=/path``; anything else is handed to ``clientFromString``.
    """
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise TargetError(f"expected tcp:HOST:PORT or unix:/path, got {text!r}")
    kind = kind.lower()
    if kind in ("tcp", "tcp6"):
        kw = _keywords(rest)
        if kw is None:
            host, port = split_host_port(rest)
        else:
            unknown = set(kw) - {"host", "port", "timeout"}
            if unknown or "host" not in kw or "port" not in kw or not kw["port"].isdigit():
                raise TargetError(f"expected tcp:host=H:port=P, got {text!r}")
            host, port = kw["host"], int(kw["port"])
            if "timeout" in kw:
                try:
                    timeout = float(kw["timeout"])
                except ValueError:
                    raise TargetError(f"timeout is not a number in {text!r}") from None
        return tcp_endpoint(reactor, host, port, timeout)
    if kind == "unix":
        kw = _keywords(rest) if rest.startswith("path=") else None
        path = kw.get("path", "") if kw else rest
        if not path:
            raise TargetError(f"no socket path in {text!r}")
        return UNIXClientEndpoint(reactor, path, timeout=timeout)
    try:
        return clientFromString(reactor, text)
    except Exception as e:  # noqa: BLE001 - Twisted's parsers raise all kinds of things
        raise TargetError(f"{text!r}: {type(e).__name__}: {e}") from None
