"""Routing for the ``host`` role (SPEC §5): a total, pure function of the request
and a snapshot of the registry.

    B <project_id>/…   → 127.0.0.1:<http_port of the project>, path unchanged
                         (404 for an unknown project or a first segment that is
                         not a lowercase UUID; 503 + Retry-After when it is not
                         running or has no port)
    B healthz          → 200 ok

Targets are loopback only and come from the registry: nothing in a request
can name another host or port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .paths import check_path, has_encoded_slash, split_target
from .types import Forward, Local, Reject, Route

#: A project id as the registry stores it: a lowercase UUID.
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LOOPBACK = "127.0.0.1"
RETRY_AFTER = 5  # seconds a client is asked to wait for a project that is starting

NOT_FOUND = Reject(404, "No such project on this host.")
NOT_RUNNING = Reject(503, "The project is not running on this host.", (b"Retry-After: %d" % RETRY_AFTER,))
_ENCODED_SLASH = Reject(400, "An encoded slash (%2F) is not allowed in the routing part of the URL.")


@dataclass(frozen=True, slots=True)
class Placement:
    """One registry row: the project's state and its container proxy's port."""

    state: str
    http_port: int | None


@dataclass(frozen=True, slots=True)
class HostRouting:
    base: bytes  # B, e.g. b"/"


def project_of(base: bytes, path: bytes) -> bytes | None:
    """The first segment after ``base`` (the project id's place), or None."""
    if not path.startswith(base):
        return None
    return path[len(base):].split(b"/", 1)[0]


def route_host(cfg: HostRouting, target: bytes, registry: Mapping[str, Placement]) -> Route:
    path, _query = split_target(target)
    bad = check_path(path)
    if bad is not None:
        return bad
    base = cfg.base
    if path == base + b"healthz":
        return Local("healthz")
    segment = project_of(base, path)
    if segment is None or not segment:
        return NOT_FOUND
    if has_encoded_slash(segment):
        return _ENCODED_SLASH
    if not UUID.fullmatch(segment):
        return NOT_FOUND
    row = registry.get(segment.decode("ascii"))
    if row is None:
        return NOT_FOUND
    if row.state != "running" or not row.http_port:
        return NOT_RUNNING
    return Forward(LOOPBACK, row.http_port, target, None, "host")


__all__ = ["HostRouting", "LOOPBACK", "NOT_FOUND", "NOT_RUNNING", "Placement", "UUID", "project_of", "route_host"]
