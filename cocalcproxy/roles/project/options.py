"""The project role's options and its frozen config (SPEC §4).

``ProjectConfig`` holds the checked option values and what the files said:
the server specs (from ``--config`` and the entry points) and the host
allowlist.  ``load_servers`` reads those files; SIGHUP calls it again and
swaps in a new config (``reload.py``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from twisted.logger import Logger
from twisted.python import usage

from ... import limits
from ...routing.addresses import valid_host
from ...supervise.spec import ServerSpec, SpecError, parse_server
from ..common import COMMON_OPTS, CommonConfig, Opt, OptionError, RoleOptions, positive_float, positive_int
from .config_file import ConfigError, load_config

log = Logger()


def target_host(text: str) -> str:
    if not valid_host(text):
        raise OptionError(f"not a host name or IP address: {text!r}")
    return text


def creatable_file(text: str) -> str:
    try:
        with open(text, "a"):
            pass
    except OSError as e:
        raise OptionError(f"cannot create {text}: {e.strerror}") from None
    return text


@dataclass(frozen=True)
class ProjectConfig:
    common: CommonConfig
    project_id: str | None = None
    config_path: str | None = None
    target_host: str = "localhost"
    activity_file: str | None = None
    rewrite_max_bytes: int = limits.REWRITE_MAX_BYTES
    kill_grace: float = limits.KILL_GRACE
    entry_points: bool = True
    #: name → ServerSpec, from the entry points and --config (read-only)
    servers: Mapping[str, ServerSpec] = field(default_factory=lambda: MappingProxyType({}))
    host_allowlist: Any = None  # None (the default list), patterns, or a callable

    @property
    def base(self) -> str:
        """B: ``<base-url><project-id>/``, or the base URL alone (SPEC §4)."""
        return self.common.base_url + (self.project_id + "/" if self.project_id else "")


class Options(RoleOptions):
    """The in-container proxy: port/server/proxy routes and named server processes (SPEC §4)."""

    synopsis = "project [--project-id UUID] [--config FILE] [--listen tcp:8080] [options]"
    longdesc = ("In-container proxy: /<project_id>/port|server|proxy/<port>/ and named server processes "
                "started on demand. It authenticates no one: reach it only from the host or behind the hub.")
    OPTIONS = COMMON_OPTS + (
        Opt("project-id", "UUID", "Project id; routes live under <base-url><project-id>/ "
            "(default: $COCALC_PROJECT_ID; without one, at the base URL)."),
        Opt("config", "FILE", "Python (c.ServerProxy…), JSON or TOML file with servers and host_allowlist."),
        Opt("target-host", "HOST", "Host that port routes connect to (localhost: 127.0.0.1, then ::1).",
            "localhost", target_host),
        Opt("activity-file", "FILE", "Touch this file's mtime (at most once a second) when a request or "
            "WebSocket frame is proxied.", convert=creatable_file),
        Opt("rewrite-max-bytes", "BYTES", "Largest response buffered for a server's rewrite_response (beyond: 502).",
            limits.REWRITE_MAX_BYTES, positive_int),
        Opt("kill-grace", "SECONDS", "Time between SIGTERM and SIGKILL when a server process is stopped.",
            limits.KILL_GRACE, positive_float),
        Opt("no-entry-points", None, "Do not discover servers from the jupyter_serverproxy_servers / "
            "cocalcproxy_servers entry points."),
    )

    def postOptions(self) -> None:
        super().postOptions()
        pid, source = self["project-id"], "--project-id"
        if pid is None:
            pid, source = os.environ.get("COCALC_PROJECT_ID") or None, "$COCALC_PROJECT_ID"
        if pid is not None:
            try:
                pid = str(uuid.UUID(pid))
            except ValueError:
                raise usage.UsageError(f"{source}: not a UUID: {pid!r}") from None
        self["project-id"] = pid
        try:
            self._config = load_servers(self._bare_config())
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None

    def _bare_config(self) -> ProjectConfig:
        return ProjectConfig(
            common=self.common(),
            project_id=self["project-id"],
            config_path=self["config"],
            target_host=self["target-host"],
            activity_file=self["activity-file"],
            rewrite_max_bytes=self["rewrite-max-bytes"],
            kill_grace=self["kill-grace"],
            entry_points=not self["no-entry-points"],
        )

    def config(self) -> ProjectConfig:
        return self._config


def read_config_file(path: str) -> tuple[Any, dict[str, ServerSpec]]:
    """``--config`` as ``(host_allowlist, {name: ServerSpec})``; raises ``ConfigError``
    naming the file, the server and the key."""
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
    return file_config.host_allowlist, specs


def load_servers(config: ProjectConfig) -> ProjectConfig:
    """``config`` with the servers and allowlist the files say now: entry points
    first, then ``--config`` (which wins on a name clash).  Raises ``ConfigError``."""
    allowlist, from_file = read_config_file(config.config_path) if config.config_path else (None, {})
    specs: dict[str, ServerSpec] = {}
    if config.entry_points:
        from .discovery import discover

        specs.update(discover())
    for name, spec in from_file.items():
        if name in specs:
            log.info("server {name!r}: --config replaces the one from {source}", name=name, source=specs[name].source)
        specs[name] = spec
    return replace(config, servers=MappingProxyType(specs), host_allowlist=allowlist)
