"""All named servers of one proxy process, as a Twisted service.

``stopService`` stops every child (TERM to its process group, then KILL) and
fires only when all of them have ended, so the proxy never exits leaving one.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from .process import KILL_GRACE, RUNNING, STARTING, SupervisedServer
from .readiness import Prober
from .spec import ServerSpec

log = Logger()


class Supervisor(Service):
    name = "server-processes"

    def __init__(self, specs: dict[str, ServerSpec], reactor, base_url: str, kill_grace: float = KILL_GRACE) -> None:
        self.reactor = reactor
        self.base_url = base_url
        self.kill_grace = kill_grace
        self.retired: list[SupervisedServer] = []  # removed by a reload, maybe still stopping
        self.prober = Prober(reactor)
        self.servers: dict[str, SupervisedServer] = {
            name: SupervisedServer(spec, reactor, self.prober, base_url, kill_grace) for name, spec in specs.items()
        }
        self.stopping = False

    def state_counts(self) -> dict[str, int]:
        """Supervised servers by state, for the ``cocalcproxy_server_processes`` gauge
        (SPEC §9): ``starting``, ``running``, and ``failed`` (its last start failed)."""
        counts = {"starting": 0, "running": 0, "failed": 0}
        for server in self.servers.values():
            if not server.spec.supervised:
                continue
            if server.state == STARTING:
                counts["starting"] += 1
            elif server.state == RUNNING:
                counts["running"] += 1
            elif server.failed:
                counts["failed"] += 1
        return counts

    def update(self, specs: dict[str, ServerSpec]) -> None:
        """New specs (SIGHUP): add new servers, stop removed ones, and give changed
        ones their new options from their next start on."""
        for name in [n for n in self.servers if n not in specs]:
            self._retire(self.servers.pop(name))
        for name, spec in specs.items():
            server = self.servers.get(name)
            if server is not None and server.spec == spec:
                continue
            if server is not None and spec.supervised and server.spec.supervised:
                server.spec = spec  # a running process keeps running; the next start uses the new options
                continue
            if server is not None:
                self._retire(server)
            self.servers[name] = SupervisedServer(spec, self.reactor, self.prober, self.base_url, self.kill_grace)

    def _retire(self, server: SupervisedServer) -> None:
        server.closed = True
        self.retired.append(server)
        server.stop().addBoth(lambda _: self.retired.remove(server))

    def stopService(self):
        super().stopService()
        self.stopping = True
        for server in [*self.servers.values(), *self.retired]:
            server.closed = True
        ds = [server.stop() for server in [*self.servers.values(), *self.retired]]
        d = defer.DeferredList(ds, consumeErrors=True)
        d.addBoth(lambda _: self.prober.close())
        return d
