"""Composition root: options → a ``MultiService`` for one role.

The only module (with ``cli``) that touches the global reactor; everything it
builds takes the reactor as an argument, so tests build the same objects on a
fake clock or a real loopback reactor.
"""

from __future__ import annotations

from twisted.application.service import MultiService, Service
from twisted.logger import Logger

from .net.listen import ListenerService
from .net.pool import BackendPool
from .proxy.factory import ConnectionTracker, ProxyConfig, ProxyFactory
from .routing.allowlist import HostAllowlist
from .routing.project import ProjectRouting, route_project
from .routing.types import Local

log = Logger()


def proxy_config(options) -> ProxyConfig:
    return ProxyConfig(
        connect_timeout=options["connect-timeout"],
        header_timeout=options["header-timeout"],
        idle_timeout=options["idle-timeout"],
        max_header_bytes=options["max-header-bytes"],
        max_connections=options["max-connections"],
        trusted_proxies=tuple(options["trusted-proxy"]),
    )


class _TrackerService(Service):
    """Runs the connection tracker's sweep and closes pooled connections on stop."""

    def __init__(self, tracker: ConnectionTracker, pool: BackendPool) -> None:
        self.tracker = tracker
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        self.tracker.start()

    def stopService(self):
        super().stopService()
        self.tracker.stop()
        self.pool.close_all()


def sweep_interval(config: ProxyConfig) -> float:
    return max(0.05, min(1.0, config.header_timeout / 4, config.idle_timeout / 4))


def project_base(base_url: str, project_id: str | None) -> bytes:
    base = base_url + (project_id + "/" if project_id else "")
    return base.encode("ascii")


def make_project_router(options) -> ProjectRouting:
    file_config = options.get("file-config")
    allow = HostAllowlist(file_config.host_allowlist if file_config else None)
    return ProjectRouting(
        base=project_base(options["base-url"], options["project-id"]),
        target_host=options["target-host"],
        allowlist=allow,
        servers=(),
    )


def index_page(routing: ProjectRouting):
    def page(route: Local, req):
        if route.name != "index":
            return None
        base = routing.base.decode("ascii")
        body = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>cocalcproxy</title></head><body>\n"
            "<h1>cocalcproxy</h1>\n<p>Web servers in this project are reached at:</p>\n<ul>\n"
            f"<li><code>{base}server/PORT/</code> (the server sees <code>/</code>)</li>\n"
            f"<li><code>{base}port/PORT/</code> (the server sees the full path)</li>\n"
            f"<li><code>{base}proxy/PORT/</code> and <code>{base}proxy/absolute/PORT/</code></li>\n"
            "</ul></body></html>\n"
        )
        return 200, body.encode("utf-8"), b"text/html; charset=utf-8"

    return page


def make_project_service(options, reactor) -> MultiService:
    config = proxy_config(options)
    routing = make_project_router(options)
    if options.get("file-config") and options["file-config"].servers:
        log.warn("server processes in --config are not started by this version; their routes answer 404")
    pool = BackendPool(reactor)
    tracker = ConnectionTracker(reactor, config.max_connections, pool, sweep_interval(config))

    def router(req):
        return route_project(routing, req.target, req)

    top = MultiService()
    _TrackerService(tracker, pool).setServiceParent(top)
    for description, endpoint in options["endpoints"]:
        factory = ProxyFactory(reactor, config, router, tracker, pool, local_pages=index_page(routing))
        ListenerService(endpoint, factory, description).setServiceParent(top)
    return top


def make_service(role: str, options, reactor) -> MultiService:
    if role == "project":
        return make_project_service(options, reactor)
    raise ValueError(f"unknown role {role!r}")
