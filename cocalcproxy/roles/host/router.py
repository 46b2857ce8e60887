"""The host role's router: the hub secret first, then ``routing.host`` on the
registry's current snapshot.  A forwarded request loses its
``X-CoCalc-Hub-Secret`` header, and with a valid secret its X-Forwarded-*
headers are believed (the hub set them; SPEC §3)."""

from __future__ import annotations

from dataclasses import replace

from twisted.logger import Logger

from ...auth.secrets import HEADER_LOWER, read_secrets, secret_matches
from ...routing.host import HostRouting, route_host
from ...routing.types import Forward, Local, Reject

log = Logger()

FORBIDDEN = Reject(403, "This host only serves requests that come through a hub.")
_STRIP = frozenset((HEADER_LOWER,))


class HostRouter:
    def __init__(self, routing: HostRouting, registry, secret_file: str | None = None) -> None:
        self.routing = routing
        self.registry = registry  # registry.host_sqlite.HostRegistry
        self.secret_file = secret_file
        self.secrets = read_secrets(secret_file) if secret_file else None

    def reload_secrets(self) -> None:
        """SIGHUP: read ``--hub-secret-file`` again (a broken file keeps the old secrets)."""
        if self.secret_file:
            self.secrets = read_secrets(self.secret_file)

    def route(self, req):
        route = route_host(self.routing, req.target, self.registry.snapshot)
        if type(route) is Local:
            return route  # healthz: for load balancers, which hold no secret
        if self.secrets is not None and not secret_matches(req, self.secrets):
            return FORBIDDEN
        if type(route) is Forward:
            return replace(route, strip=_STRIP, trusted=True if self.secrets is not None else None)
        return route
