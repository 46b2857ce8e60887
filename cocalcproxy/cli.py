"""Command line: ``twistd -n cocalcproxy <role> [options]`` (SPEC §1–§2, §4).

The twistd plugin names this module; ``Options`` and ``makeService`` are what
twistd calls.  Each role is one ``usage.Options`` subclass; options shared by
every role live in ``CommonOptions``.  ``postOptions`` validates everything it
can (numbers, CIDRs, endpoint strings, files), so mistakes are usage errors
that name the option instead of tracebacks at startup.
"""

from __future__ import annotations

import ipaddress
import os
import uuid

from twisted.python import usage

from . import __version__, limits
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


class ProjectOptions(CommonOptions):
    """The in-container proxy: port/server/proxy routes and named server processes (SPEC §4)."""

    synopsis = "[--project-id UUID] [--config FILE] [--listen tcp:8080] [options]"
    optParameters = CommonOptions.optParameters + [
        ["project-id", None, None, "Project UUID; routes live under <base-url><project-id>/ (default: $COCALC_PROJECT_ID)."],
        ["config", None, None, "Python (c.ServerProxy…), JSON or TOML file with servers and host_allowlist."],
        ["target-host", None, "localhost", "Host that port routes connect to (localhost tries 127.0.0.1, then ::1)."],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        pid = self["project-id"]
        source = "--project-id"
        if pid is None:
            pid = os.environ.get("COCALC_PROJECT_ID") or None
            source = "$COCALC_PROJECT_ID"
        if pid is not None:
            try:
                pid = str(uuid.UUID(pid))
            except ValueError:
                raise usage.UsageError(f"{source}: not a UUID: {pid!r}") from None
        self["project-id"] = pid
        target = self["target-host"]
        if not target or any(ch in target for ch in "/@ \t"):
            raise usage.UsageError(f"--target-host: not a host name or IP address: {target!r}")
        self["file-config"] = None
        if self["config"]:
            from .config_file import ConfigError, load_config

            try:
                self["file-config"] = load_config(self["config"])
            except ConfigError as e:
                raise usage.UsageError(str(e)) from None


class Options(usage.Options):
    synopsis = "<role> [options]"
    longdesc = (
        "cocalcproxy: streaming HTTP/WebSocket proxy for multi-user notebook platforms. "
        "Run 'twistd -n cocalcproxy <role> --help' for the options of a role."
    )
    subCommands = [
        ["project", None, ProjectOptions, "In-container proxy: /<project_id>/port|server|proxy/<port>/ and named servers."],
    ]

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"cocalcproxy {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("choose a role: " + ", ".join(name for name, *_ in self.subCommands))


def makeService(options: Options):
    from twisted.internet import reactor

    from . import service

    role = options.subCommand
    return service.make_service(role, options.subOptions, reactor)
