"""Role ``project``: the in-container proxy (SPEC §4).

Routes ``B port/P``, ``B server/P``, ``B proxy/[absolute/][HOST:]P`` to servers
in the project; ``B`` is ``<base-url><project-id>/`` (or ``<base-url>`` without a
project id).  Named server processes come from ``--config`` and entry points
(``cocalcproxy.supervise``); they are started on their first request, and
``B server-proxy/…`` is their management API, ``B`` their launcher page.
"""

from __future__ import annotations

import os
import uuid

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from ..options import CommonOptions
from ..routing.allowlist import HostAllowlist
from ..routing.paths import split_target
from ..routing.project import ProjectRouting, route_project
from ..routing.types import Local, Named, Reject
from ..service import add_listeners, proxy_config, tracked
from ..supervise import api as server_api
from ..supervise.activity import ActivityFile
from ..supervise.launcher import launcher_page
from ..supervise.routes import NamedRoutes
from ..supervise.spec import SpecError, parse_server
from ..supervise.supervisor import Supervisor

NAME = "project"
DESCRIPTION = "In-container proxy: /<project_id>/port|server|proxy/<port>/ and named servers."

log = Logger()


class Options(CommonOptions):
    """The in-container proxy: port/server/proxy routes and named server processes (SPEC §4)."""

    synopsis = "[--project-id UUID] [--config FILE] [--listen tcp:8080] [options]"
    optParameters = CommonOptions.optParameters + [
        ["project-id", None, None, "Project UUID; routes live under <base-url><project-id>/ (default: $COCALC_PROJECT_ID)."],
        ["config", None, None, "Python (c.ServerProxy…), JSON or TOML file with servers and host_allowlist."],
        ["target-host", None, "localhost", "Host that port routes connect to (localhost tries 127.0.0.1, then ::1)."],
        ["activity-file", None, None, "Touch this file's mtime (at most once a second) when a request or WebSocket frame is proxied."],
        ["rewrite-max-bytes", None, 64 << 20, "Largest response buffered for a server's rewrite_response (beyond: 502).", int],
        ["kill-grace", None, 3.0, "Seconds between SIGTERM and SIGKILL when stopping a server process.", float],
    ]
    optFlags = [
        ["no-entry-points", None, "Do not discover servers from the jupyter_serverproxy_servers / cocalcproxy_servers entry points."],
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
        self["server-specs"] = {}
        if self["config"]:
            from ..config_file import ConfigError

            try:
                self["file-config"], self["server-specs"] = read_config(self["config"])
            except ConfigError as e:
                raise usage.UsageError(str(e)) from None
        if self["rewrite-max-bytes"] < 1:
            raise usage.UsageError("--rewrite-max-bytes: must be at least 1")
        if self["kill-grace"] <= 0:
            raise usage.UsageError("--kill-grace: must be greater than 0")
        if self["activity-file"]:
            try:
                with open(self["activity-file"], "a"):
                    pass
            except OSError as e:
                raise usage.UsageError(f"--activity-file: cannot create {self['activity-file']}: {e.strerror}") from None


def project_base(base_url: str, project_id: str | None) -> bytes:
    """B: ``<base-url><project-id>/``, or the base URL alone."""
    return (base_url + (project_id + "/" if project_id else "")).encode("ascii")


def read_config(path: str):
    """``--config`` as ``(ProxyFileConfig, {name: ServerSpec})``; raises ``ConfigError``
    naming the file, the server and the key."""
    from ..config_file import ConfigError, load_config

    file_config = load_config(path)
    specs = {}
    for name, raw in file_config.servers.items():
        try:
            spec, warnings = parse_server(name, raw, source=f"--config {path}")
        except SpecError as e:
            raise ConfigError(f"--config {path}: {e}") from None
        for w in warnings:
            log.warn("--config {path}: {warning}", path=path, warning=w)
        specs[name] = spec
    return file_config, specs


def make_routing(options, servers=()) -> ProjectRouting:
    file_config = options.get("file-config")
    return ProjectRouting(
        base=project_base(options["base-url"], options["project-id"]),
        target_host=options["target-host"],
        allowlist=HostAllowlist(file_config.host_allowlist if file_config else None, on_error=_allowlist_failed),
        servers=frozenset(servers),
    )


def _allowlist_failed(host: str, error: Exception) -> None:
    """A ``host_allowlist`` callable raised: the request was denied (403); say why in the log."""
    log.error("host_allowlist raised {error!r} for host {host!r}; the request is denied", error=error, host=host)


def server_specs(options) -> dict:
    """Servers from entry points, then ``--config`` (which wins on a name clash)."""
    specs = {}
    if not options.get("no-entry-points"):
        from ..supervise.discovery import discover

        specs.update(discover())
    for name, spec in (options.get("server-specs") or {}).items():
        if name in specs:
            log.info("server {name!r}: --config replaces the one from {source}", name=name, source=specs[name].source)
        specs[name] = spec
    return specs


def local_pages(routing: ProjectRouting, supervisor):
    """``GET B`` (the launcher page) and the management API's answers."""
    base = routing.base.decode("ascii")

    def page(route: Local, req):
        if route.name == "index":
            return 200, launcher_page(supervisor, base), b"text/html; charset=utf-8"
        return server_api.local_page(route, supervisor, base)

    return page


class Current:
    """The routing in force; SIGHUP replaces it (new servers, new host allowlist)."""

    def __init__(self, routing: ProjectRouting) -> None:
        self.routing = routing


def make_router(current: Current, supervisor, named_routes: NamedRoutes):
    mgmt_prefix = current.routing.base + server_api.PREFIX

    def router(req):
        route = route_project(current.routing, req.target, req)
        kind = type(route)
        if kind is Named:
            if supervisor.stopping:
                return Reject(503, "The proxy is stopping.")
            return named_routes.route(route, req)
        if kind is Reject and route.status == 404:
            path = split_target(req.target)[0]
            if path.startswith(mgmt_prefix):
                mgmt = server_api.management_route(path[len(mgmt_prefix):], req.method, supervisor)
                if mgmt is not None:
                    return mgmt
        return route

    return router


def make_service(options, reactor) -> MultiService:
    config = proxy_config(options)
    specs = server_specs(options)
    routing = make_routing(options, specs)
    base = routing.base.decode("ascii")
    top, tracker, pool = tracked(reactor, config, options["drain-timeout"])
    supervisor = Supervisor(specs, reactor, base, kill_grace=options["kill-grace"])
    if specs:
        log.info("server processes: {names}", names=", ".join(sorted(specs)))
    activity = ActivityFile(options["activity-file"], reactor) if options.get("activity-file") else None
    named_routes = NamedRoutes(supervisor, reactor, options["rewrite-max-bytes"], activity, config.connect_timeout)
    current = Current(routing)
    router = make_router(current, supervisor, named_routes)
    add_listeners(top, options, reactor, config, router, tracker, pool,
                  local_pages=local_pages(routing, supervisor), activity=activity)
    outer = StopInOrder()
    supervisor.setServiceParent(outer)
    top.setServiceParent(outer)
    top.getServiceNamed("reload").add("server processes and host allowlist",
                                      lambda: reload_config(options, current, supervisor))
    return outer


def reload_config(options, current: Current, supervisor) -> None:
    """SIGHUP: read ``--config`` and the entry points again.  New servers appear,
    removed ones are stopped, changed ones take their new options at their next
    start (a running process is not interrupted).  A broken file changes nothing."""
    from ..config_file import ConfigError

    path = options.get("config")
    try:
        file_config, file_specs = read_config(path) if path else (None, {})
    except ConfigError as e:
        log.error("SIGHUP: config not reloaded: {error}", error=str(e))
        raise
    reloaded = dict(options)
    reloaded["file-config"], reloaded["server-specs"] = file_config, file_specs
    specs = server_specs(reloaded)
    supervisor.update(specs)
    current.routing = make_routing(reloaded, specs)
    log.info("SIGHUP: config reloaded; servers: {names}", names=", ".join(sorted(specs)) or "none")


class StopInOrder(MultiService):
    """Stops its children one after the other, last added first: the proxy
    drains its clients, then the server processes are stopped (and waited for)."""

    def stopService(self):
        Service.stopService(self)
        d = defer.succeed(None)
        for child in reversed(list(self)):
            d.addBoth(lambda _, child=child: child.stopService())
        return d
