"""From a ``Named`` route to what the front carries out.

A running server gets a ``Forward`` at once; otherwise the route is a Deferred
that fires when its start has succeeded (``Forward``) or failed (``Reject`` 502
/504 naming the server).  Raw-socket servers take WebSocket upgrades only
(405 otherwise) and are handed to the WebSocket ↔ TCP bridge, connected the way
HTTP requests are (``net.connect``: a unix socket, or localhost).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from ... import limits
from ...routing.addresses import Address
from ...routing.callables import RequestView, call_with_declared
from ...routing.paths import split_target
from ...routing.types import Forward, Handoff, Named, Reject
from ...supervise.process import StartError, Target
from ...supervise.spec import map_path
from . import management
from .rewrite import make_rewriter

log = Logger()


class NamedRoutes:
    def __init__(self, supervisor, bridge_factory, rewrite_max_bytes: int = limits.REWRITE_MAX_BYTES,
                 activity=None) -> None:
        self.supervisor = supervisor
        self.bridge_factory = bridge_factory  # wsbridge.BridgeFactory, for raw-socket servers
        self.rewrite_max_bytes = rewrite_max_bytes
        self.activity = activity  # the --activity-file hook, for bridged raw sockets
        self._bridges: dict[tuple, tuple] = {}  # (server name, counts) -> (target, bridge start callable)

    def route(self, named: Named, req):
        server = self.supervisor.servers.get(named.name)
        if server is None:
            return Reject(404, "No such server.")
        if server.spec.raw_socket_proxy:
            return self._raw_route(server, req)
        target = server.running_target()
        if target is not None:
            return self._forward(server, named, req, target)
        d = server.ensure_started()
        d.addCallbacks(lambda t: self._forward(server, named, req, t), rejected)
        return d

    # ------------------------------------------------------------------ http
    def _forward(self, server, named: Named, req, target: Target) -> Forward:
        spec = server.spec
        if spec.absolute_url:
            path_target, context = named.full_target, None
        else:
            path, query = split_target(named.rest)
            if spec.mappath:
                path = map_path(spec, path.decode("latin-1")).encode("latin-1")
            path_target, context = path + query, named.context_path
        activity = counts_as_activity(spec, req)
        if activity:
            management.touch(server)
        if target.unix_socket:
            host, port = target.unix_socket, 0  # an absolute path: a unix-socket Forward
        else:
            host, port = "localhost", target.port
        rewrite = None
        if spec.rewrite_response:
            # ``path`` as jupyter-server-proxy passes it: the proxied path, no query
            rewrite = make_rewriter(spec, req, host, port, split_target(path_target)[0], self.rewrite_max_bytes)
        return Forward(host, port, path_target, context, "named", set_headers=target.headers, activity=activity,
                       rewrite=rewrite)

    # ------------------------------------------------------------ raw socket
    def _raw_route(self, server, req):
        name = server.spec.name
        if not req.upgrade:
            return Reject(405, f"The server '{name}' is a raw socket server: only WebSocket connections are accepted.")
        counts = counts_as_activity(server.spec, req)
        activity = self.activity if counts else None

        def handoff(target: Target):
            if counts:
                management.touch(server)
            key = (name, activity is not None)
            cached = self._bridges.get(key)
            if cached is None or cached[0] != target:
                address = Address.unix(target.unix_socket) if target.unix_socket else Address("localhost", target.port)
                cached = self._bridges[key] = (target, self.bridge_factory.starter(address, activity))
            return Handoff(cached[1])

        target = server.running_target()
        if target is not None:
            return handoff(target)
        d = server.ensure_started()
        d.addCallbacks(handoff, rejected)
        return d


def counts_as_activity(spec, req) -> bool:
    """Does this request count as activity (``update_last_activity``, the exclude patterns)?"""
    setting = spec.update_last_activity
    if setting is False:
        return False
    if setting is True and not spec.exclude_last_activity_patterns:
        return True  # the default: nothing to look at
    path = split_target(req.target)[0].decode("latin-1")
    for pattern in spec.exclude_last_activity_patterns:
        if pattern.match(path):
            return False
    if setting is True:
        return True
    try:
        return bool(call_with_declared(setting, RequestView.from_head(req).arguments()))
    except Exception:  # noqa: BLE001 - the operator's callable
        log.failure("server {server}: update_last_activity callable failed", server=spec.name)
        return True


def rejected(failure):
    """A failed start as the answer the client gets."""
    if failure.check(StartError):
        return Reject(failure.value.status, failure.value.message)
    if failure.check(defer.CancelledError):
        return Reject(503, "The request was cancelled.")
    log.failure("starting a server failed", failure)
    return Reject(502, "The server could not be started.")
