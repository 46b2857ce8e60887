"""What every role shares: the common options (SPEC §2), how options are declared
and checked, the help layout, and the frozen ``CommonConfig``.

A role declares its options as ``Opt`` values; ``RoleOptions`` turns them into
Twisted's ``optParameters``/``optFlags`` (values stay text), converts and checks
them in ``postOptions`` — a problem is a ``UsageError`` naming the option — and
prints them with metavars and defaults.  ``config()`` then builds the role's
frozen config dataclass from the checked values: no runtime objects (no
reactor, no endpoints, no open files) live in options or config.
"""

from __future__ import annotations

import ipaddress
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.python import usage

from .. import limits
from ..net.listen import ListenError, check_listen
from ..routing.paths import normalize_base_url

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OptionError(ValueError):
    """A converter's complaint; ``RoleOptions`` prefixes the option's name."""


@dataclass(frozen=True)
class Opt:
    """One command-line option: ``--name METAVAR`` (a flag when ``metavar`` is None)."""

    name: str
    metavar: str | None
    help: str
    default: Any = None
    convert: Callable[[str], Any] | None = None
    repeat: bool = False  # may be given several times (a list of values)


# ------------------------------------------------------------------ converters

def positive_float(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise OptionError(f"not a number: {text!r}") from None
    if not number > 0 or number == float("inf"):
        raise OptionError(f"must be a number of seconds greater than 0, got {text!r}")
    return number


def positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise OptionError(f"not a whole number: {text!r}") from None
    if number < 1:
        raise OptionError(f"must be at least 1, got {text!r}")
    return number


def network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise OptionError(f"not an IP address or CIDR network: {text!r}") from None


def base_url(text: str) -> str:
    if any(ch in text for ch in "?#% \t\r\n"):
        raise OptionError(f"must be a plain path, got {text!r}")
    return normalize_base_url(text)


def listen(text: str) -> str:
    try:
        check_listen(text)
    except ListenError as e:
        raise OptionError(str(e)) from None  # it names --listen and the string itself
    return text


COMMON_OPTS = (
    Opt("listen", "ENDPOINT", "Twisted server endpoint to listen on (repeatable): tcp:8080, "
        "tcp:8080:interface=127.0.0.1, tcp6:8080:interface=\\:\\:1, unix:/run/x.sock, systemd:domain=INET:index=0.",
        convert=listen, repeat=True),
    Opt("base-url", "PATH", "Prefix every route lives under (normalised to start and end with /).", "/", base_url),
    Opt("connect-timeout", "SECONDS", "Backend connect timeout (then 504).", limits.CONNECT_TIMEOUT, positive_float),
    Opt("header-timeout", "SECONDS", "Time a client has to send a complete request head (then 408).",
        limits.HEADER_TIMEOUT, positive_float),
    Opt("idle-timeout", "SECONDS", "An idle keep-alive client connection is closed after this.",
        limits.IDLE_TIMEOUT, positive_float),
    Opt("max-header-bytes", "BYTES", "Largest request head, request line + headers (then 431).",
        limits.MAX_HEADER_BYTES, positive_int),
    Opt("max-connections", "N", "Client connections beyond this are closed at accept.",
        limits.MAX_CONNECTIONS, positive_int),
    Opt("drain-timeout", "SECONDS", "On SIGTERM, time in-flight requests get to finish before connections are cut.",
        limits.DRAIN_TIMEOUT, positive_float),
    Opt("trusted-proxy", "CIDR", "Peer network whose X-Forwarded-* headers are believed (repeatable; "
        "replaces the default).", convert=network, repeat=True),
    Opt("https-key", "FILE", "PEM private key (unencrypted): terminate TLS on every tcp: listener. "
        "Needs --https-cert; SIGHUP reads both again."),
    Opt("https-cert", "FILE", "PEM certificate, followed by its chain, for --https-key."),
)


def _repeater(name: str):
    def opt(self, value: str) -> None:
        self[name].append(value)

    return opt


class RoleOptions(usage.Options):
    """Base of every role's options: declare ``OPTIONS`` (a tuple of ``Opt``)."""

    OPTIONS: tuple[Opt, ...] = COMMON_OPTS
    default_listen: tuple[str, ...] = ("tcp:8080",)
    default_trusted: tuple[str, ...] = ("127.0.0.0/8", "::1")

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        inherited = {o.name for base in cls.__mro__[1:] for o in getattr(base, "OPTIONS", ())}
        cls._install([o for o in cls.OPTIONS if o.name not in inherited])

    @classmethod
    def _install(cls, opts) -> None:
        """Twisted's tables for ``opts`` (each class lists its own; Twisted merges the MRO's)."""
        cls.optParameters = [[o.name, None, None, o.help] for o in opts if o.metavar and not o.repeat]
        cls.optFlags = [[o.name, None, o.help] for o in opts if o.metavar is None]
        for o in opts:
            if o.repeat:
                setattr(cls, "opt_" + o.name.replace("-", "_"), _repeater(o.name))

    def __init__(self) -> None:
        super().__init__()
        for o in self.OPTIONS:
            if o.repeat:
                self[o.name] = []

    def postOptions(self) -> None:
        for o in self.OPTIONS:
            raw = self.get(o.name)
            if o.metavar is None:
                self[o.name] = bool(raw)
            elif o.repeat:
                self[o.name] = [self._convert(o, value) for value in raw]
            elif raw is None:
                self[o.name] = o.default
            else:
                self[o.name] = self._convert(o, raw)
        if not self["listen"]:
            self["listen"] = list(self.default_listen)
        if not self["trusted-proxy"]:
            self["trusted-proxy"] = [ipaddress.ip_network(n) for n in self.default_trusted]
        self._check_tls()

    def _check_tls(self, client_ca: str | None = None) -> None:
        """Both TLS files or neither, and usable now (a one-line error naming the file)."""
        key, cert = self["https-key"], self["https-cert"]
        if bool(key) != bool(cert):
            raise usage.UsageError("--https-key and --https-cert go together: give both or neither")
        if key:
            from ..net.tls import TLSFileError, server_options

            try:
                server_options(key, cert, client_ca)
            except TLSFileError as e:
                raise usage.UsageError(str(e)) from None

    @staticmethod
    def _convert(o: Opt, raw: str):
        if o.convert is None:
            return raw
        try:
            return o.convert(raw)
        except OptionError as e:
            message = str(e)
            if not message.startswith(f"--{o.name} "):
                message = f"--{o.name}: {message}"
            raise usage.UsageError(message) from None

    def getUsage(self, width: int | None = None) -> str:
        defaults = {"listen": " ".join(self.default_listen),
                    "trusted-proxy": " ".join(self.default_trusted) or "none"}
        return render_help(self.synopsis, getattr(self, "longdesc", ""), self.OPTIONS, width or 100, defaults)

    def __str__(self) -> str:
        return self.getUsage()

    def common(self) -> "CommonConfig":
        return CommonConfig(
            listen=tuple(self["listen"]),
            base_url=self["base-url"],
            connect_timeout=self["connect-timeout"],
            header_timeout=self["header-timeout"],
            idle_timeout=self["idle-timeout"],
            max_header_bytes=self["max-header-bytes"],
            max_connections=self["max-connections"],
            drain_timeout=self["drain-timeout"],
            trusted_proxies=tuple(self["trusted-proxy"]),
            https_key=self["https-key"],
            https_cert=self["https-cert"],
        )


RoleOptions._install(COMMON_OPTS)


def render_help(synopsis: str, longdesc: str, opts, width: int, defaults: dict | None = None) -> str:
    """``--name METAVAR  help [default: …]``, sorted, wrapped at ``width``."""
    rows = []
    for o in sorted((*opts, Opt("help", None, "Show this help and exit.")), key=lambda o: o.name):
        left = f"  --{o.name}" + (f" {o.metavar}" if o.metavar else "")
        text = o.help
        default = (defaults or {}).get(o.name, o.default)
        if default is not None and o.metavar:
            text += f" [default: {default}]"
        rows.append((left, text))
    col = min(max(len(left) for left, _ in rows) + 2, 34)
    out = [f"Usage: twistd -n cocalcproxy {synopsis}", ""]
    if longdesc:
        out += textwrap.wrap(longdesc, width) + [""]
    out.append("Options:")
    for left, text in rows:
        wrapped = textwrap.wrap(text, width - col) or [""]
        if len(left) + 2 > col:
            out.append(left)
            out += [" " * col + line for line in wrapped]
        else:
            out.append(left.ljust(col) + wrapped[0])
            out += [" " * col + line for line in wrapped[1:]]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class CommonConfig:
    """The checked values of the common options (SPEC §2)."""

    listen: tuple[str, ...] = ("tcp:8080",)
    base_url: str = "/"
    connect_timeout: float = limits.CONNECT_TIMEOUT
    header_timeout: float = limits.HEADER_TIMEOUT
    idle_timeout: float = limits.IDLE_TIMEOUT
    max_header_bytes: int = limits.MAX_HEADER_BYTES
    max_connections: int = limits.MAX_CONNECTIONS
    drain_timeout: float = limits.DRAIN_TIMEOUT
    trusted_proxies: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))
    https_key: str | None = None
    https_cert: str | None = None
    tls_client_ca: str | None = None  # the host role's --client-ca: client certificates must be signed by it

    @property
    def tls(self) -> bool:
        return self.https_key is not None


__all__ = ["COMMON_OPTS", "CommonConfig", "Opt", "OptionError", "RoleOptions", "base_url", "listen", "network",
           "positive_float", "positive_int", "render_help"]
