"""``--listen`` endpoint strings → endpoints; a service that makes bind errors fatal.

Every string is parsed once at option time (``check_listen``, no reactor
needed) so a typo is a one-line usage error naming the option, and again when
the service is built (``parse_listen``).  ``tcp:``/``tcp6:`` strings are parsed
here (``tcp:PORT[:interface=ADDR][:backlog=N]``, keywords in any order, ``\\:``
escapes a colon) and get our write-through transport (``fasttcp``); everything
else (``unix:``, ``systemd:``, ``ssl:``, ``haproxy:``…) is Twisted's own parser.
"""

from __future__ import annotations

import ipaddress

from twisted.application.service import Service
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from .fasttcp import FastTCPServerEndpoint

log = Logger()


class ListenError(Exception):
    """A ``--listen`` string that names no endpoint; the message says why."""


def _split(rest: str) -> list[str]:
    """Split at unescaped colons, unescaping ``\\:``."""
    parts, current, i = [], [], 0
    while i < len(rest):
        ch = rest[i]
        if ch == "\\" and i + 1 < len(rest):
            current.append(rest[i + 1])
            i += 2
            continue
        if ch == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def parse_tcp(description: str) -> tuple[int, str, int]:
    """``(port, interface, backlog)`` of a ``tcp:``/``tcp6:`` string; ``ListenError`` if invalid."""
    kind, _, rest = description.partition(":")
    fields = {"port": None, "interface": "::" if kind.lower() == "tcp6" else "", "backlog": "50"}
    positional = 0
    for part in _split(rest):
        key, sep, value = part.partition("=")
        if not sep:
            if positional == 0 and fields["port"] is None:
                fields["port"] = part
                positional += 1
                continue
            raise ListenError(f"--listen {description!r}: unexpected {part!r}; an IPv6 interface needs its "
                              "colons escaped, e.g. tcp6:8080:interface=\\:\\:1")
        if key not in fields:
            raise ListenError(f"--listen {description!r}: unknown key {key!r} (tcp takes port, interface, backlog)")
        fields[key] = value
    port, interface, backlog = fields["port"], fields["interface"], fields["backlog"]
    if port is None or not port.isdigit() or int(port) > 65535:
        raise ListenError(f"--listen {description!r}: the port must be a number 0-65535")
    if not backlog.isdigit():
        raise ListenError(f"--listen {description!r}: backlog must be a number")
    if interface:
        try:
            ipaddress.ip_address(interface)
        except ValueError:
            raise ListenError(f"--listen {description!r}: interface must be an IP address, got {interface!r}") from None
    return int(port), interface, int(backlog)


def parse_listen(reactor, description: str):
    """An ``IStreamServerEndpoint`` for ``description``; ``ListenError`` if invalid."""
    kind = description.partition(":")[0].lower()
    if kind in ("tcp", "tcp6"):
        port, interface, backlog = parse_tcp(description)
        return FastTCPServerEndpoint(reactor, port, backlog, interface)
    try:
        return serverFromString(reactor, description)
    except IndexError:
        raise ListenError(f"--listen {description!r}: no such socket was passed in "
                          "(systemd: endpoints need socket activation)") from None
    except OSError as e:
        raise ListenError(f"--listen {description!r}: cannot read {e.filename or 'a file'}: {e.strerror}") from None
    except Exception as e:  # noqa: BLE001 - Twisted's parsers raise all kinds of things
        raise ListenError(f"--listen {description!r}: {e}") from None


def check_listen(description: str) -> None:
    """Validate ``description`` without a reactor (option time)."""
    parse_listen(None, description)


class ListenerService(Service):
    """Listen on one endpoint; a failure to bind stops startup with a clear message."""

    def __init__(self, endpoint, factory, description: str) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
        self.port = None

    def privilegedStartService(self) -> None:
        # Bind before twistd drops privileges, so ports below 1024 work.
        self._listen()
        super().privilegedStartService()

    def startService(self) -> None:
        super().startService()
        if self.port is None:
            self._listen()

    def _listen(self) -> None:
        result: list = []
        self.endpoint.listen(self.factory).addBoth(result.append)
        if not result:
            raise SystemExit(f"cocalcproxy: --listen {self.description}: listening did not complete")
        outcome = result[0]
        if hasattr(outcome, "getErrorMessage"):
            raise SystemExit(f"cocalcproxy: cannot listen on {self.description} (--listen): {outcome.getErrorMessage()}")
        self.port = outcome
        log.info("listening on {description}", description=self.description)

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
