"""Routing for the ``project`` role (SPEC §4): a total, pure function from a
request-target to a ``Route``.

    B port/P/rest                 → target-host:P, full path
    B server/P/rest               → target-host:P, /rest
    B proxy/P/rest                → target-host:P, /rest
    B proxy/absolute/P/rest       → target-host:P, full path
    B proxy/HOST:P/rest           → HOST:P if allowlisted, /rest
    B proxy/absolute/HOST:P/rest  → HOST:P if allowlisted, full path
    B NAME/rest                   → named server process NAME
    B healthz                     → 200 ok
    B                             → the index page
    (any of the above without the trailing slash after P / NAME → 301)

Only segments the route reads are checked for ``%2f`` (400); everything after
the routing prefix is forwarded byte for byte.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

from .addresses import bare_host, valid_host
from .allowlist import HostAllowlist
from .paths import check_path, has_encoded_slash, parse_port, split_target
from .types import Forward, Local, Named, Redirect, Reject, Route
_NOT_FOUND = Reject(404, "No route matches this URL.")
_ENCODED_SLASH = Reject(400, "An encoded slash (%2F) is not allowed in the routing part of the URL.")


@dataclass(frozen=True)
class ProjectRouting:
    """What the project router needs to know.  ``base`` is B, e.g. ``b"/<pid>/"``."""

    base: bytes
    target_host: str = "localhost"
    allowlist: HostAllowlist = field(default_factory=HostAllowlist)
    servers: Container[str] = ()


def _next_segment(rest: bytes) -> tuple[bytes, bool, bytes]:
    """``(segment, had_slash, after)`` for ``rest`` = ``seg[/after]``."""
    i = rest.find(b"/")
    if i < 0:
        return rest, False, b""
    return rest[:i], True, rest[i + 1 :]


def route_project(cfg: ProjectRouting, target: bytes, handler: object = None) -> Route:
    path, query = split_target(target)
    bad = check_path(path)
    if bad is not None:
        return bad
    base = cfg.base
    if not path.startswith(base):
        # The base's own segments are literal; only a %2f where they should be is a 400.
        nseg = base.count(b"/") - 1
        if nseg and any(has_encoded_slash(s) for s in path.split(b"/", nseg + 1)[1 : nseg + 1]):
            return _ENCODED_SLASH
        if path == base[:-1]:
            return Redirect(base + query)
        return _NOT_FOUND
    rest = path[len(base) :]
    if not rest:
        return Local("index")
    kind, slash, after = _next_segment(rest)
    if has_encoded_slash(kind):
        return _ENCODED_SLASH
    if kind == b"healthz" and not slash:
        return Local("healthz")
    if slash and (kind == b"port" or kind == b"server"):
        return _port_route(cfg, kind, after, target, query)
    if slash and kind == b"proxy":
        return _proxy_route(cfg, after, target, query, handler)
    return _named_route(cfg, kind, slash, after, target, query)


def _port_route(cfg: ProjectRouting, kind: bytes, after: bytes, target: bytes, query: bytes) -> Route:
    seg, slash, tail = _next_segment(after)
    if has_encoded_slash(seg):
        return _ENCODED_SLASH
    port = parse_port(seg)
    if port is None:
        return _NOT_FOUND
    context = cfg.base + kind + b"/" + seg
    if not slash:
        return Redirect(context + b"/" + query)
    if kind == b"port":
        return Forward(cfg.target_host, port, target, None, "port")
    return Forward(cfg.target_host, port, b"/" + tail + query, context, "server")


def _proxy_route(cfg: ProjectRouting, after: bytes, target: bytes, query: bytes, handler: object) -> Route:
    seg, slash, tail = _next_segment(after)
    absolute = False
    prefix = cfg.base + b"proxy/"
    if seg == b"absolute" and slash:
        absolute = True
        prefix += b"absolute/"
        seg, slash, tail = _next_segment(tail)
    if has_encoded_slash(seg):
        return _ENCODED_SLASH
    port = parse_port(seg)
    if port is not None:
        host = cfg.target_host
    else:
        host_b, colon, port_b = seg.rpartition(b":")
        port = parse_port(port_b) if colon else None
        host = host_b.decode("latin-1")
        # userinfo (@), a missing or non-numeric port, not a host: never proxied (SPEC §4).
        if port is None or not host.isascii() or not valid_host(host, bare_ipv6=False):
            return _NOT_FOUND
        if not cfg.allowlist.allows(host, handler):
            return Reject(403, f"Host '{host}' is not allowed.")
        host = bare_host(host)
    context = prefix + seg
    if not slash:
        return Redirect(context + b"/" + query)
    if absolute:
        return Forward(host, port, target, None, "proxy")
    return Forward(host, port, b"/" + tail + query, context, "proxy")


def _named_route(cfg: ProjectRouting, name_b: bytes, slash: bool, after: bytes, target: bytes, query: bytes) -> Route:
    try:
        name = name_b.decode("ascii")
    except UnicodeDecodeError:
        return _NOT_FOUND
    if name not in cfg.servers:
        return _NOT_FOUND
    context = cfg.base + name_b
    if not slash:
        return Redirect(context + b"/" + query)
    return Named(name, b"/" + after + query, target, context)
