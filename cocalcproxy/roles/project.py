"""Role ``project``: the in-container proxy (SPEC §4).

Routes ``B port/P``, ``B server/P``, ``B proxy/[absolute/][HOST:]P`` to servers
in the project; ``B`` is ``<base-url><project-id>/`` (or ``<base-url>`` without a
project id).  Named server processes are parsed from ``--config`` and arrive in
the router through ``ProjectRouting.servers``.
"""

from __future__ import annotations

import os
import uuid

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python import usage

from ..options import CommonOptions
from ..routing.allowlist import HostAllowlist
from ..routing.project import ProjectRouting, route_project
from ..routing.types import Local
from ..service import add_listeners, proxy_config, tracked

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
            from ..config_file import ConfigError, load_config

            try:
                self["file-config"] = load_config(self["config"])
            except ConfigError as e:
                raise usage.UsageError(str(e)) from None


def project_base(base_url: str, project_id: str | None) -> bytes:
    """B: ``<base-url><project-id>/``, or the base URL alone."""
    return (base_url + (project_id + "/" if project_id else "")).encode("ascii")


def make_routing(options) -> ProjectRouting:
    file_config = options.get("file-config")
    return ProjectRouting(
        base=project_base(options["base-url"], options["project-id"]),
        target_host=options["target-host"],
        allowlist=HostAllowlist(file_config.host_allowlist if file_config else None),
        servers=(),
    )


def index_page(routing: ProjectRouting):
    """``GET B``: a short page saying where the project's servers are."""

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


def make_service(options, reactor) -> MultiService:
    config = proxy_config(options)
    routing = make_routing(options)
    file_config = options.get("file-config")
    if file_config and file_config.servers:
        log.warn("server processes in --config are not started by this version; their routes answer 404")

    def router(req):
        return route_project(routing, req.target, req)

    top, tracker, pool = tracked(reactor, config, options["drain-timeout"])
    add_listeners(top, options, reactor, config, router, tracker, pool, local_pages=index_page(routing))
    return top
