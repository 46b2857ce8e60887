"""The management API under ``B server-proxy/`` (same shapes as jupyter-server-proxy's).

    GET    server-proxy/servers-info        launcher entries of every server
    GET    server-proxy/icon/NAME           the server's icon file
    GET    server-proxy/api/servers/        running servers (pid, port/socket, times)
    DELETE server-proxy/api/servers/NAME    stop it → 204 (404 if unknown)
"""

from __future__ import annotations

import json
import mimetypes
import time
from datetime import datetime, timezone

from ...routing.types import Local, Reject
from ...supervise.process import RUNNING

PREFIX = b"server-proxy/"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def management_route(rest: bytes, method: bytes, supervisor):
    """The route for ``B server-proxy/…`` (``rest`` after the prefix, no query), or None."""
    if rest == b"servers-info":
        return _only_get(method) or Local("servers-info")
    if rest.startswith(b"icon/"):
        server = supervisor.servers.get(rest[5:].decode("utf-8", "replace"))
        if server is None or not server.spec.launcher_entry.icon_path:
            return _only_get(method) or Reject(404, "This server has no icon.")
        return _only_get(method) or Local("icon", rest[5:])
    if rest in (b"api/servers", b"api/servers/"):
        return _only_get(method) or Local("api-servers")
    if rest.startswith(b"api/servers/"):
        name = rest[len(b"api/servers/"):].rstrip(b"/")
        if method == b"DELETE":
            server = supervisor.servers.get(name.decode("utf-8", "replace"))
            if server is None:
                return Reject(404, "No such server.")
            d = server.stop()
            d.addCallback(lambda _: Local("deleted"))
            return d
        if method in (b"GET", b"HEAD"):
            server = supervisor.servers.get(name.decode("utf-8", "replace"))
            if server is None or not server.spec.supervised or server.state != RUNNING:
                return Reject(404, "No such running server.")
            return Local("api-server", name)
        return Reject(405, "Use GET or DELETE.")
    return None


def _only_get(method: bytes):
    if method in (b"GET", b"HEAD"):
        return None
    return Reject(405, "Only GET is allowed here.")


def servers_info(supervisor, base: str) -> dict:
    out = []
    for name, server in sorted(supervisor.servers.items()):
        spec = server.spec
        entry = spec.launcher_entry
        launcher = {"enabled": entry.enabled, "title": entry.title, "path_info": entry.path_info,
                    "category": entry.category}
        if entry.icon_path:
            launcher["icon_url"] = f"{base}server-proxy/icon/{name}"
        out.append({"name": name, "launcher_entry": launcher, "new_browser_tab": spec.new_browser_tab})
    return {"server_processes": out}


def server_status(server) -> dict:
    target = server.target
    return {
        "name": server.spec.name,
        "pid": server.pid,
        "port": target.port if target else None,
        "unix_socket": target.unix_socket if target else None,
        "started": iso(server.started),
        "last_activity": iso(server.last_activity),
    }


def running_servers(supervisor) -> list:
    return [server_status(s) for _, s in sorted(supervisor.servers.items()) if s.spec.supervised and s.state == RUNNING]


def local_page(route: Local, supervisor, base: str):
    """``(status, body, content type)`` for the API's ``Local`` routes, or None."""
    name = route.name
    if name == "servers-info":
        return _json(200, servers_info(supervisor, base))
    if name == "api-servers":
        return _json(200, running_servers(supervisor))
    if name == "api-server":
        server = supervisor.servers.get(route.arg.decode("utf-8", "replace"))
        if server is None or server.state != RUNNING:
            return None  # it stopped since it was routed: the standard 404
        return _json(200, server_status(server))
    if name == "deleted":
        return 204, b"", b"text/plain"
    if name == "icon":
        server = supervisor.servers.get(route.arg.decode("utf-8", "replace"))
        path = server.spec.launcher_entry.icon_path if server is not None else None
        try:
            with open(path, "rb") as f:
                data = f.read(4 << 20)
        except (OSError, TypeError):  # gone since it was routed, or its file cannot be read
            return None  # the standard 404
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return 200, data, ctype.encode("ascii")
    return None


def _json(status: int, value) -> tuple[int, bytes, bytes]:
    return status, json.dumps(value).encode("utf-8"), b"application/json"


def touch(server) -> None:
    server.last_activity = time.time()
