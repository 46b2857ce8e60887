"""Role ``project``: the in-container proxy (SPEC §4).

Routes ``B port/P``, ``B server/P``, ``B proxy/[absolute/][HOST:]P`` to servers
in the project; ``B`` is ``<base-url><project-id>/`` (or ``<base-url>`` without a
project id).  Named server processes come from ``--config`` and entry points;
they are started on their first request (``cocalcproxy.supervise``), and
``B server-proxy/…`` is their management API, ``B`` their launcher page.
"""

from __future__ import annotations

from twisted.logger import Logger

from ..services import RoleServices, StopInOrder
from .options import Options, ProjectConfig

NAME = "project"
DESCRIPTION = "In-container proxy: /<project_id>/port|server|proxy/<port>/ and named servers."

log = Logger()


def make_service(config: ProjectConfig, reactor):
    from ...supervise.supervisor import Supervisor
    from ...wsbridge import BridgeFactory
    from .activity import ActivityFile
    from .named import NamedRoutes
    from .reload import reload_config
    from .router import ProjectRouter

    specs = dict(config.servers)
    supervisor = Supervisor(specs, reactor, config.base, kill_grace=config.kill_grace)
    if specs:
        log.info("server processes: {names}", names=", ".join(sorted(specs)))
    activity = ActivityFile(config.activity_file, reactor) if config.activity_file else None
    bridges = BridgeFactory(reactor, connect_timeout=config.common.connect_timeout)
    named = NamedRoutes(supervisor, bridges, config.rewrite_max_bytes, activity)
    router = ProjectRouter(config, supervisor, named)
    services = RoleServices(reactor, config.common)
    services.listen(router.route, local_pages=router.local_page, activity=activity)
    services.reloader.add("server processes and host allowlist", lambda: reload_config(router, supervisor))
    outer = StopInOrder()
    supervisor.setServiceParent(outer)
    services.top.setServiceParent(outer)
    return outer


__all__ = ["DESCRIPTION", "NAME", "Options", "make_service"]
