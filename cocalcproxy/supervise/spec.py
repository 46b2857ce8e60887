"""A server process's options, validated once, with jupyter-server-proxy's semantics.

``parse_server(name, options)`` turns one ``c.ServerProxy.servers`` entry (or an
entry point's dict) into a ``ServerSpec``; every problem is a ``SpecError``
naming the server and the key.  ``resolve`` fills in the templates for one
start: callables get only the arguments they declare, ``{{``/``}}`` escape
braces, and a callable's result is templated exactly once.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from ..routing.callables import call_with_declared

#: Names that would shadow the proxy's own routes (SPEC §4).
RESERVED_NAMES = frozenset({"server", "port", "proxy", "server-proxy", "healthz", "metrics"})
_NAME = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")
_TEMPLATE_KEYS = ("port", "unix_socket", "base_url")
_KNOWN = {
    "command", "timeout", "environment", "absolute_url", "port", "unix_socket", "mappath",
    "launcher_entry", "new_browser_tab", "request_headers_override", "update_last_activity",
    "exclude_last_activity_patterns", "raw_socket_proxy", "rewrite_response",
    # accepted for compatibility, no effect here (we always stream):
    "progressive",
}


class SpecError(ValueError):
    """An invalid server option; the message names the server and the key."""


@dataclass(frozen=True)
class LauncherEntry:
    enabled: bool = True
    icon_path: str | None = None
    title: str = ""
    path_info: str = ""
    category: str = "Notebook"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    command: Any = None  # list of str, a callable, or None (already running)
    timeout: float = 5.0
    environment: Any = field(default_factory=dict)
    absolute_url: bool = False
    port: int = 0
    unix_socket: Any = None  # None, a path, or True (private temp dir)
    mappath: Any = field(default_factory=dict)
    launcher_entry: LauncherEntry = field(default_factory=LauncherEntry)
    new_browser_tab: bool = True
    request_headers_override: Any = field(default_factory=dict)
    update_last_activity: Any = True
    exclude_last_activity_patterns: tuple = ()
    raw_socket_proxy: bool = False
    rewrite_response: tuple = ()
    source: str = "config"

    @property
    def supervised(self) -> bool:
        """False for a server with no command: it is proxied to as already running."""
        return bool(self.command)


def template(value: str, values: dict) -> str:
    """``str.format`` with only ``{port}``, ``{unix_socket}``, ``{base_url}``; ``{{``/``}}`` escape."""
    return value.format_map(values)  # an unknown field raises KeyError


def _check_template(name: str, key: str, value: str) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as e:
        raise SpecError(f"server {name!r}: {key}: bad template {value!r}: {e}") from None
    for f in fields:
        if f not in _TEMPLATE_KEYS:
            raise SpecError(f"server {name!r}: {key}: unknown template field {{{f}}} in {value!r} "
                            f"(use {{port}}, {{unix_socket}} or {{base_url}}; {{{{ and }}}} for braces)")


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise SpecError(f"server name {name!r}: must be a non-empty string")
    if name in RESERVED_NAMES:
        raise SpecError(f"server name {name!r}: reserved (it would hide the proxy's own {name}/ route)")
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise SpecError(f"server name {name!r}: only URL path characters, no '/' or '%'")
    return name


class _Raw:
    """One server's raw options, with errors that name the server and the key."""

    def __init__(self, name: str, raw: dict) -> None:
        self.name = name
        self.raw = raw

    def get(self, key: str, default=None):
        return self.raw.get(key, default)

    def bad(self, key: str, why: str) -> SpecError:
        return SpecError(f"server {self.name!r}: {key}: {why}")

    def flag(self, key: str, default: bool) -> bool:
        v = self.raw.get(key, default)
        if not isinstance(v, bool):
            raise self.bad(key, f"must be true or false, got {v!r}")
        return v


def parse_server(name: Any, raw: Any, source: str = "config") -> tuple[ServerSpec, list[str]]:
    """Validate one server's options; return the spec and warnings (unknown keys)."""
    name = check_name(name)
    if not isinstance(raw, dict):
        raise SpecError(f"server {name!r}: options must be a dict, got {type(raw).__name__}")
    warnings = [f"server {name!r}: unknown key {k!r} ignored" for k in raw if k not in _KNOWN]
    o = _Raw(name, raw)
    command = _command(o)
    port, unix_socket = _port_and_socket(o, command)
    spec = ServerSpec(
        name=name,
        command=command or None,
        timeout=_timeout(o),
        environment=_dict_or_callable(o, "environment"),
        absolute_url=o.flag("absolute_url", False),
        port=port,
        unix_socket=unix_socket,
        mappath=_mappath(o),
        launcher_entry=_launcher(o),
        new_browser_tab=o.flag("new_browser_tab", True),
        request_headers_override=_headers(o),
        update_last_activity=_activity(o),
        exclude_last_activity_patterns=_patterns(o),
        raw_socket_proxy=o.flag("raw_socket_proxy", False),
        rewrite_response=_rewrite(o),
        source=source,
    )
    return spec, warnings


def _command(o: _Raw):
    command = o.get("command")
    if command is None or callable(command):
        return command
    if isinstance(command, (str, bytes)) or not isinstance(command, (list, tuple)):
        raise o.bad("command", "must be a list of strings or a callable")
    for item in command:
        if not isinstance(item, str):
            raise o.bad("command", f"every item must be a string, got {item!r}")
        _check_template(o.name, "command", item)
    return list(command)


def _timeout(o: _Raw) -> float:
    timeout = o.get("timeout", 5)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise o.bad("timeout", f"must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _port_and_socket(o: _Raw, command) -> tuple[int, Any]:
    port = o.get("port", 0)
    if port is None:
        port = 0
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise o.bad("port", f"must be a port number 0-65535, got {port!r}")
    unix_socket = o.get("unix_socket")
    if unix_socket is False:
        unix_socket = None
    if unix_socket is not None and unix_socket is not True:
        if not isinstance(unix_socket, str) or not unix_socket:
            raise o.bad("unix_socket", f"must be a path or true, got {unix_socket!r}")
    if not command and unix_socket is True:
        raise o.bad("unix_socket", "true needs a command (the socket path is chosen at start)")
    if not command and not unix_socket and not port:
        raise o.bad("port", "a server without a command must give the port (or unix_socket) it already listens on")
    return port, unix_socket


def _headers(o: _Raw):
    headers = _dict_or_callable(o, "request_headers_override")
    if isinstance(headers, dict):
        for k, v in headers.items():
            if not _TOKEN.fullmatch(k) or any(c in v for c in "\r\n\0"):
                raise o.bad("request_headers_override", f"invalid header {k!r}: {v!r}")
    return headers


def _mappath(o: _Raw):
    mappath = o.get("mappath", {})
    if mappath is None:
        return {}
    if not callable(mappath):
        if not isinstance(mappath, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mappath.items()):
            raise o.bad("mappath", "must be a dict of path to path, or a callable")
    return mappath


def _launcher(o: _Raw) -> LauncherEntry:
    launcher = o.get("launcher_entry")
    if launcher is None:
        launcher = {}
    if not isinstance(launcher, dict):
        raise o.bad("launcher_entry", "must be a dict")
    for k in ("icon_path", "title", "path_info", "category"):
        if launcher.get(k) is not None and not isinstance(launcher[k], str):
            raise o.bad(f"launcher_entry.{k}", f"must be a string, got {launcher[k]!r}")
    enabled = launcher.get("enabled", True)
    if not isinstance(enabled, bool):
        raise o.bad("launcher_entry.enabled", f"must be true or false, got {enabled!r}")
    return LauncherEntry(
        enabled=enabled,
        icon_path=launcher.get("icon_path") or None,
        title=launcher.get("title") or o.name,
        path_info=launcher.get("path_info") or o.name + "/",
        category=launcher.get("category") or "Notebook",
    )


def _activity(o: _Raw):
    activity = o.get("update_last_activity", True)
    if not isinstance(activity, bool) and not callable(activity):
        raise o.bad("update_last_activity", f"must be true, false or a callable, got {activity!r}")
    return activity


def _patterns(o: _Raw) -> tuple:
    patterns = o.get("exclude_last_activity_patterns", ()) or ()
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        raise o.bad("exclude_last_activity_patterns", "must be a list of regular expressions")
    compiled = []
    for p in patterns:
        try:
            compiled.append(re.compile(p))
        except (re.error, TypeError) as e:
            raise o.bad("exclude_last_activity_patterns", f"{p!r}: {e}") from None
    return tuple(compiled)


def _rewrite(o: _Raw) -> tuple:
    rewrite = o.get("rewrite_response", ()) or ()
    if callable(rewrite):
        rewrite = (rewrite,)
    if not isinstance(rewrite, (list, tuple)) or not all(callable(r) for r in rewrite):
        raise o.bad("rewrite_response", "must be a callable or a list of callables")
    return tuple(rewrite)


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _dict_or_callable(o: _Raw, key: str):
    value = o.get(key, {})
    if value is None:
        return {}
    if callable(value):
        return value
    if not isinstance(value, dict):
        raise o.bad(key, "must be a dict of strings or a callable")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise o.bad(key, f"keys and values must be strings, got {k!r}: {v!r}")
        _check_template(o.name, key, v)
    return dict(value)


@dataclass(frozen=True)
class Resolved:
    """What one start of a server uses: the templates filled in."""

    argv: list[str]
    environment: dict[str, str]
    headers: tuple[tuple[bytes, bytes], ...]


def resolve(spec: ServerSpec, port: int, unix_socket: str, base_url: str) -> Resolved:
    """Fill in the templates (and call the callables) for one start.  Raises SpecError."""
    values = {"port": port, "unix_socket": unix_socket, "base_url": base_url}

    def produce(key: str, value):
        if callable(value):
            try:
                return call_with_declared(value, values)
            except Exception as e:  # noqa: BLE001 - the operator's callable
                raise SpecError(f"server {spec.name!r}: {key}: the callable failed: {type(e).__name__}: {e}") from None
        return value

    def fill(key: str, s) -> str:
        if not isinstance(s, str):
            raise SpecError(f"server {spec.name!r}: {key}: expected a string, got {s!r}")
        try:
            return template(s, values)
        except (KeyError, ValueError, IndexError) as e:
            raise SpecError(f"server {spec.name!r}: {key}: bad template {s!r}: {e}") from None

    command = produce("command", spec.command) or []
    if isinstance(command, (str, bytes)) or not isinstance(command, (list, tuple)):
        raise SpecError(f"server {spec.name!r}: command: the callable must return a list of strings")
    argv = [fill("command", a) for a in command]
    env = produce("environment", spec.environment) or {}
    if not isinstance(env, dict):
        raise SpecError(f"server {spec.name!r}: environment: the callable must return a dict")
    environment = {str(k): fill("environment", v) for k, v in env.items()}
    hdrs = produce("request_headers_override", spec.request_headers_override) or {}
    if not isinstance(hdrs, dict):
        raise SpecError(f"server {spec.name!r}: request_headers_override: the callable must return a dict")
    headers = []
    for k, v in hdrs.items():
        v = fill("request_headers_override", v)
        if not isinstance(k, str) or not _TOKEN.fullmatch(k) or any(c in v for c in "\r\n\0"):
            raise SpecError(f"server {spec.name!r}: request_headers_override: invalid header {k!r}")
        headers.append((k.encode("latin-1"), v.encode("latin-1")))
    return Resolved(argv, environment, tuple(headers))


def map_path(spec: ServerSpec, path: str) -> str:
    """``mappath``: a dict lookup or a callable given ``path``."""
    m = spec.mappath
    if callable(m):
        result = call_with_declared(m, {"path": path})
        return result if isinstance(result, str) and result.startswith("/") else path
    return m.get(path, path)
