"""Where a connection goes: host names, ports, addresses — validated in one place.

``Address`` is the value every connector takes (``net/connect.py``): a TCP
host and port, or a unix-socket path.  ``valid_host`` is the one host-name
check of the project: URL routes (``proxy/HOST:PORT``), ``--target-host``,
bridge ``--target`` strings and token files all use it, so a name that one
accepts the others accept too.  Pure: no I/O, no name resolution.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

#: A DNS-style name or an IPv4 literal: letters, digits, dots, hyphens, underscores.
_NAME = re.compile(r"[A-Za-z0-9._-]+")


class AddressError(ValueError):
    """Text that names no address; the message says why (without echoing much of it)."""


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP ``host``/``port`` (``host`` without IPv6 brackets), or a unix socket ``path``."""

    host: str | None = None
    port: int = 0
    path: str | None = None

    @classmethod
    def unix(cls, path: str) -> "Address":
        return cls(path=path)

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def ip_literal(host: str) -> str | None:
    """The canonical text of an IP literal (brackets allowed around IPv6), or None."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def valid_host(host: str, *, bare_ipv6: bool = True) -> bool:
    """A host name or IP literal we would connect to.

    IPv6 literals may be written in brackets; without them only if
    ``bare_ipv6`` (never in a URL, where ``HOST:PORT`` needs the brackets).
    Userinfo (``@``), slashes, spaces and anything but name characters are refused.
    """
    if not host:
        return False
    if host.startswith("["):
        return host.endswith("]") and ":" in host and ip_literal(host) is not None
    if ":" in host:
        return bare_ipv6 and ip_literal(host) is not None
    return _NAME.fullmatch(host) is not None


def bare_host(host: str) -> str:
    """``[::1]`` → ``::1``; other hosts unchanged."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def parse_port(text: str | bytes) -> int | None:
    """A decimal port 1–65535 (text or the bytes of a URL segment), or None."""
    if not text.isdigit() or len(text) > 5:
        return None
    port = int(text)
    return port if 1 <= port <= 65535 else None


def split_host_port(text: str) -> Address:
    """``HOST:PORT``, ``[V6]:PORT`` or ``V6:PORT`` (the last colon ends the host)."""
    host, sep, port_text = text.replace("\\:", ":").rpartition(":")
    if not sep or not host:
        raise AddressError(f"expected HOST:PORT, got {text!r}")
    port = parse_port(port_text)
    if port is None:
        raise AddressError(f"not a port number 1-65535 in {text!r}")
    if not valid_host(host):
        raise AddressError(f"not a host name or IP address: {host!r}")
    return Address(bare_host(host), port)


def parse_token_target(text: str) -> Address:
    """A websockify token file's target: ``host:port`` or ``unix_socket:/path``."""
    text = text.strip()
    if text.startswith("unix_socket:"):
        path = text[len("unix_socket:"):].strip()
        if not path:
            raise AddressError("empty unix_socket path")
        return Address.unix(path)
    return split_host_port(text)


def _keywords(rest: str) -> dict[str, str] | None:
    """``host=H:port=P[:timeout=T]`` (Twisted's keyword form; ``\\:`` escapes a colon)."""
    if "=" not in rest:
        return None
    out = {}
    for part in rest.replace("\\:", "\0").split(":"):
        key, sep, value = part.partition("=")
        if not sep:
            raise AddressError(f"expected key=value, got {part.replace(chr(0), ':')!r}")
        out[key] = value.replace("\0", ":")
    return out


def parse_endpoint_target(text: str) -> tuple[Address, float | None] | None:
    """A ``--target`` string as ``(Address, timeout or None)``.

    ``tcp:HOST:PORT``, ``tcp:[V6]:PORT``, ``tcp:host=H:port=P[:timeout=T]``,
    ``unix:/path``, ``unix:path=/path``.  None for any other endpoint type
    (``tls:…``), which Twisted's own parser handles.
    """
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise AddressError(f"expected tcp:HOST:PORT or unix:/path, got {text!r}")
    kind = kind.lower()
    if kind in ("tcp", "tcp6"):
        kw = _keywords(rest)
        if kw is None:
            return split_host_port(rest), None
        if set(kw) - {"host", "port", "timeout"} or "host" not in kw or "port" not in kw:
            raise AddressError(f"expected tcp:host=H:port=P, got {text!r}")
        address = split_host_port(f"{kw['host']}:{kw['port']}")
        timeout = None
        if "timeout" in kw:
            try:
                timeout = float(kw["timeout"])
            except ValueError:
                raise AddressError(f"timeout is not a number in {text!r}") from None
        return address, timeout
    if kind == "unix":
        kw = _keywords(rest) if rest.startswith("path=") else None
        path = kw.get("path", "") if kw else rest
        if not path:
            raise AddressError(f"no socket path in {text!r}")
        return Address.unix(path), None
    return None
