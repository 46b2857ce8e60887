"""The project role's router: ``routing.project`` decides, this carries out
what needs the role's state — named servers (``named.py``), the management API
(``management.py``) and the launcher page.

The config in force is ``ProjectRouter.config``; SIGHUP swaps in a new one
(``reload.py``), and the next request is routed by it.
"""

from __future__ import annotations

from twisted.logger import Logger

from ...routing.allowlist import HostAllowlist
from ...routing.callables import RequestView
from ...routing.paths import split_target
from ...routing.project import ProjectRouting, route_project
from ...routing.types import Local, Named, Reject
from . import management
from .launcher import launcher_page
from .named import NamedRoutes
from .options import ProjectConfig

log = Logger()


def project_routing(config: ProjectConfig) -> ProjectRouting:
    return ProjectRouting(
        base=config.base.encode("ascii"),
        target_host=config.target_host,
        allowlist=HostAllowlist(config.host_allowlist, on_error=_allowlist_failed),
        servers=frozenset(config.servers),
    )


def _allowlist_failed(host: str, error: Exception) -> None:
    """A ``host_allowlist`` callable raised: the request was denied (403); say why in the log."""
    log.error("host_allowlist raised {error!r} for host {host!r}; the request is denied", error=error, host=host)


class ProjectRouter:
    def __init__(self, config: ProjectConfig, supervisor, named: NamedRoutes) -> None:
        self.supervisor = supervisor
        self.named = named
        self.use(config)

    def use(self, config: ProjectConfig) -> None:
        """Route by ``config`` from the next request on."""
        self.config = config
        self.routing = project_routing(config)
        self.management_prefix = self.routing.base + management.PREFIX

    def route(self, req):
        routing = self.routing
        route = route_project(routing, req.target, _Handler(req) if routing.allowlist.func else None)
        kind = type(route)
        if kind is Named:
            if self.supervisor.stopping:
                return Reject(503, "The proxy is stopping.")
            return self.named.route(route, req)
        if kind is Reject and route.status == 404:
            path = split_target(req.target)[0]
            if path.startswith(self.management_prefix):
                answer = management.management_route(path[len(self.management_prefix):], req.method, self.supervisor)
                if answer is not None:
                    return answer
        return route

    def local_page(self, route: Local, req):
        """``GET B`` (the launcher page) and the management API's answers."""
        base = self.config.base
        if route.name == "index":
            return 200, launcher_page(self.supervisor, base), b"text/html; charset=utf-8"
        return management.local_page(route, self.supervisor, base)


class _Handler:
    """What a ``host_allowlist`` callable gets as its ``handler``: the request
    view is built only when the callable looks at it."""

    __slots__ = ("_req", "_view")

    def __init__(self, req) -> None:
        self._req = req
        self._view = None

    def __getattr__(self, name):
        if self._view is None:
            self._view = RequestView.from_head(self._req)
        return getattr(self._view, name)
