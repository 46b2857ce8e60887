"""All named servers of one proxy process, as a Twisted service.

``stopService`` stops every child (TERM to its process group, then KILL) and
fires only when all of them have ended, so the proxy never exits leaving one.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from .process import KILL_GRACE, SupervisedServer
from .readiness import Prober
from .spec import ServerSpec

log = Logger()


class Supervisor(Service):
    name = "server-processes"

    def __init__(self, specs: dict[str, ServerSpec], reactor, base_url: str, kill_grace: float = KILL_GRACE) -> None:
        self.reactor = reactor
        self.base_url = base_url
        self.prober = Prober(reactor)
        self.servers: dict[str, SupervisedServer] = {
            name: SupervisedServer(spec, reactor, self.prober, base_url, kill_grace) for name, spec in specs.items()
        }
        self.stopping = False

    def stopService(self):
        super().stopService()
        self.stopping = True
        for server in self.servers.values():
            server.closed = True
        ds = [server.stop() for server in self.servers.values()]
        d = defer.DeferredList(ds, consumeErrors=True)
        d.addBoth(lambda _: self.prober.close())
        return d
