"""Role ``host``: the project-host proxy (SPEC §5).

``B <project_id>/…`` goes to ``127.0.0.1:<http_port>`` of that project's
container proxy, path unchanged, WebSockets included; the ports come from an
SQLite registry held as an in-memory snapshot (``registry.host_sqlite``).
``--hub-secret-file`` makes it answer only requests that carry the hubs'
secret; ``--client-ca`` (with ``--https-*``) only clients with a certificate.
"""

from __future__ import annotations

from twisted.application.service import Service

from ...routing.host import HostRouting
from ..services import RoleServices
from .options import HostConfig, Options

NAME = "host"
DESCRIPTION = "Project-host proxy: /<project_id>/... to the project's container port from an SQLite registry."


class RegistryService(Service):
    """Polls the registry while the role runs."""

    def __init__(self, registry) -> None:
        self.registry = registry

    def startService(self) -> None:
        super().startService()
        self.registry.start()

    def stopService(self):
        super().stopService()
        self.registry.stop()


def make_service(config: HostConfig, reactor):
    from ...registry.host_sqlite import HostRegistry
    from .router import HostRouter

    registry = HostRegistry(config.registry, reactor)
    router = HostRouter(HostRouting(config.common.base_url.encode("ascii")), registry, config.hub_secret_file)
    services = RoleServices(reactor, config.common)
    RegistryService(registry).setServiceParent(services.top)
    services.listen(router.route)
    if config.hub_secret_file:
        services.reloader.add("hub secret", router.reload_secrets)
    return services.top


__all__ = ["DESCRIPTION", "NAME", "Options", "make_service"]
