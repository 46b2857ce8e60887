"""Routing for the ``bridge`` role (SPEC §7): a total, pure function of the request.

    WebSocket upgrade, any path under B  → BridgeTo(token)   (the role picks the target)
    B healthz                            → 200 ok
    GET/HEAD B rest, with --web          → WebFile(rest)      (the role looks the file up)
    anything else                        → 405 (WebSocket only / GET and HEAD only)

The token and file look-ups are the role's (``roles/bridge/router.py``): they
touch the file system; this decides only what kind of answer a request gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from .paths import check_path, split_target
from .types import Local, Reject


@dataclass(frozen=True, slots=True)
class BridgeRouting:
    base: bytes
    fixed_target: bool  # --target (every upgrade goes there) rather than --token-file
    web: bool  # --web DIR is set


@dataclass(frozen=True, slots=True)
class BridgeTo:
    """Bridge this upgrade; ``token`` picks the target (None with ``--target``)."""

    token: str | None


@dataclass(frozen=True, slots=True)
class WebFile:
    """A ``--web`` file: ``rel`` is the raw path after the base; ``path`` the whole
    path and ``query`` the query (for a directory redirect)."""

    rel: bytes
    path: bytes
    query: bytes


NO_TOKEN = Reject(404, "A token is required: ?token=NAME.")
NO_FILE = Reject(404, "No such file.")


def route_bridge(cfg: BridgeRouting, req):
    path, query = split_target(req.target)
    bad = check_path(path)
    if bad is not None:
        return bad
    if req.upgrade:
        if cfg.fixed_target:
            return BridgeTo(None)
        values = parse_qs(query[1:].decode("latin-1")).get("token") if query else None
        return BridgeTo(values[0]) if values else NO_TOKEN
    if path == cfg.base + b"healthz":
        return Local("healthz")
    if not cfg.web:
        return Reject(405, "This address only accepts WebSocket connections.", (b"Allow: GET",))
    if req.method not in (b"GET", b"HEAD"):
        return Reject(405, "Only GET and HEAD are allowed here.", (b"Allow: GET, HEAD",))
    rel = path[len(cfg.base):]
    if not path.startswith(cfg.base) or rel[:1] == b"/":
        # (an empty segment after the base: "//host/" would make a redirect to another site)
        return NO_FILE
    return WebFile(rel, path, query)


__all__ = ["BridgeRouting", "BridgeTo", "NO_FILE", "NO_TOKEN", "WebFile", "route_bridge"]
