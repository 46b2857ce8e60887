"""Routing for the ``hub`` role (SPEC §6), pure: split into what needs no lookup
(``parse_hub_request``) and what follows the lookups (``route_hub``).

    B healthz            → 200 ok
    B <project_id>/…     → authenticate, authorise, place → the project's host,
                           path unchanged, the hub's credentials removed and the
                           hub secret added
    anything else        → --fallback, or 404

Between the two halves the role asks its caches (and, on a miss, its
database): who the credential is, may they use the project, where it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ..auth.credentials import CookieNames, Credential, find_credential, stripped
from ..auth.policy import Decision
from .addresses import parse_port, valid_host
from .host import UUID, project_of
from .paths import check_path, has_encoded_slash, split_target
from .types import Forward, Local, Reject, Route

RETRY_AFTER = 5

NOT_FOUND = Reject(404, "No route matches this URL.")
NOT_PLACED = Reject(503, "The project is not running: it is not placed on any host. Start it and try again.",
                    (b"Retry-After: %d" % RETRY_AFTER,))
BAD_HOST = Reject(502, "The project's host has an invalid address in the database.")
DATABASE_DOWN = Reject(503, "The hub cannot reach its database right now; try again in a moment.",
                       (b"Retry-After: %d" % RETRY_AFTER,))
#: ``Bearer``, not ``Basic``: a browser shows its own password dialog for Basic.
UNAUTHORIZED_HEADERS = (b'WWW-Authenticate: Bearer realm="cocalcproxy"',)
_ENCODED_SLASH = Reject(400, "An encoded slash (%2F) is not allowed in the routing part of the URL.")


@dataclass(frozen=True, slots=True)
class HostTarget:
    """A project host from its URL (``http://10.0.0.5:9001``, ``https://host:9443``)."""

    host: str
    port: int
    https: bool


@dataclass(frozen=True, slots=True)
class HubRouting:
    base: bytes
    cookies: CookieNames
    fallback: HostTarget | None = None
    fallback_tls: object = None  # the client TLS creator for an https fallback (made by the role)


@dataclass(frozen=True, slots=True)
class HubRequest:
    """A request for a project: the lookups decide the rest."""

    project_id: str
    credential: Credential | None


@lru_cache(maxsize=4096)
def parse_host_url(url: str | None) -> HostTarget | None:
    """``scheme://host[:port]`` (no path, no userinfo), or None.  Cached: every
    forwarded request parses its project's placement, and hosts are few."""
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        return None
    rest = rest.rstrip("/")
    if "/" in rest or "@" in rest or not rest:
        return None
    if rest.startswith("["):
        host, _, port_text = rest[1:].partition("]")
        port_text = port_text[1:] if port_text.startswith(":") else ("" if not port_text else "x")
    else:
        host, _, port_text = rest.partition(":")
    port = parse_port(port_text) if port_text else (443 if scheme == "https" else 80)
    if port is None or not valid_host(host):
        return None
    return HostTarget(host, port, scheme == "https")


def parse_hub_request(cfg: HubRouting, req) -> HubRequest | Route:
    path, _query = split_target(req.target)
    bad = check_path(path)
    if bad is not None:
        return bad
    base = cfg.base
    if path == base + b"healthz":
        return Local("healthz")
    segment = project_of(base, path)
    if segment and has_encoded_slash(segment):
        return _ENCODED_SLASH
    if not segment or not UUID.fullmatch(segment):
        return _fallback(cfg, req)
    return HubRequest(segment.decode("ascii"), find_credential(req, cfg.cookies))


def _fallback(cfg: HubRouting, req) -> Route:
    fb = cfg.fallback
    if fb is None:
        return NOT_FOUND
    return Forward(fb.host, fb.port, req.target, None, "fallback", strip=stripped(None),
                   strip_cookies=cfg.cookies.both, tls=cfg.fallback_tls if fb.https else None)


def refusal(decision: Decision) -> Reject:
    headers = UNAUTHORIZED_HEADERS if decision.status == 401 else ()
    return Reject(decision.status, decision.message, headers)


def route_hub(cfg: HubRouting, req, hub: HubRequest, decision: Decision, placement: str | None,
              secret: bytes | None, tls_for: Callable[[str], object] | None = None) -> Route:
    """The route once the lookups are done: refused, not placed, or forwarded."""
    if not decision.allowed:
        return refusal(decision)
    if placement is None:
        return NOT_PLACED
    host = parse_host_url(placement)
    if host is None:
        return BAD_HOST
    tls = None
    if host.https:
        tls = tls_for(host.host) if tls_for is not None else host.host
    return Forward(host.host, host.port, req.target, None, "hub",
                   set_headers=((b"X-CoCalc-Hub-Secret", secret),) if secret else (),
                   strip=stripped(hub.credential), strip_cookies=cfg.cookies.both, tls=tls)


__all__ = ["BAD_HOST", "DATABASE_DOWN", "HostTarget", "HubRequest", "HubRouting", "NOT_FOUND", "NOT_PLACED",
           "parse_host_url", "parse_hub_request", "refusal", "route_hub"]
