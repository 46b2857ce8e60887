"""``--listen`` endpoint strings → endpoints; a service that makes bind errors fatal.

Every string is parsed at option time (``parse_listen``) so a typo is a usage
error naming the option, not a traceback at startup.  ``tcp:``/``tcp6:``
endpoints get our write-through transport (``fasttcp``); everything else
(``unix:``, ``systemd:``, ``ssl:``, ``haproxy:``…) is Twisted's own.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.logger import Logger

from .fasttcp import FastTCPServerEndpoint

log = Logger()


class ListenError(Exception):
    pass


def parse_listen(reactor, description: str):
    """An ``IStreamServerEndpoint`` for ``description``; ``ListenError`` if invalid."""
    try:
        endpoint = serverFromString(reactor, description)
    except Exception as e:  # noqa: BLE001 - parsers raise all kinds of things
        raise ListenError(f"--listen {description!r}: {type(e).__name__}: {e}") from None
    if type(endpoint) in (TCP4ServerEndpoint, TCP6ServerEndpoint):
        endpoint = FastTCPServerEndpoint(reactor, endpoint._port, endpoint._backlog, endpoint._interface)
    return endpoint


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
