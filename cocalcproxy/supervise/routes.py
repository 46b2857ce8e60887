"""From a ``Named`` route to what the front carries out.

A running server gets a ``Forward`` at once; otherwise the route is a Deferred
that fires when its start has succeeded (``Forward``) or failed (``Reject`` 502
/504 naming the server).  Raw-socket servers take WebSocket upgrades only
(405 otherwise) and are handed to the WebSocket ↔ TCP bridge.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.logger import Logger

from ..bridge_targets import tcp_endpoint
from ..limits import CONNECT_TIMEOUT
from ..proxy.rewrite import make_rewriter
from ..routing.paths import split_target
from ..routing.types import Forward, Handoff, Named, Reject
from ..wsbridge import bridge_start
from . import api
from .process import StartError, Target
from .spec import call_with_declared, map_path

log = Logger()


class NamedRoutes:
    def __init__(self, supervisor, reactor, rewrite_max_bytes: int = 64 << 20, activity=None,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.supervisor = supervisor
        self.reactor = reactor
        self.connect_timeout = connect_timeout  # for bridged raw sockets (HTTP uses the factory's)
        self.rewrite_max_bytes = rewrite_max_bytes
        self.activity = activity  # the --activity-file hook, for bridged raw sockets
        self._bridges: dict[tuple, tuple] = {}  # (server name, counts) -> (target, bridge start callable)

    def route(self, named: Named, req):
        server = self.supervisor.servers.get(named.name)
        if server is None:
            return Reject(404, "No such server.")
        spec = server.spec
        if spec.raw_socket_proxy:
            return self._raw_route(server, req)
        target = server.running_target()
        if target is not None:
            return self._forward(server, named, req, target)
        d = server.ensure_started()
        d.addCallbacks(lambda t: self._forward(server, named, req, t), _rejected)
        return d

    # ------------------------------------------------------------------ http
    def _forward(self, server, named: Named, req, target: Target) -> Forward:
        spec = server.spec
        if spec.absolute_url:
            path_target, context = named.full_target, None
        else:
            path, query = split_target(named.rest)
            if spec.mappath:
                text = path.decode("latin-1")
                path = map_path(spec, text).encode("latin-1")
            path_target, context = path + query, named.context_path
        activity = self._counts(spec, req)
        if activity:
            api.touch(server)
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

    def _counts(self, spec, req) -> bool:
        """Does this request count as activity (``update_last_activity``, the exclude patterns)?"""
        setting = spec.update_last_activity
        if setting is False:
            return False
        if setting is True and not spec.exclude_last_activity_patterns:
            return True  # the default: nothing to look at
        path_b, query_b = split_target(req.target)
        path = path_b.decode("latin-1")
        for pattern in spec.exclude_last_activity_patterns:
            if pattern.match(path):
                return False
        if setting is True:
            return True
        headers = {}
        for lname, value, _ in req.headers:
            headers[lname.decode("latin-1")] = value.decode("latin-1")
        request = SimpleNamespace(path=path, query=query_b[1:].decode("latin-1"), method=req.method.decode("latin-1"),
                                  headers=headers)
        try:
            return bool(call_with_declared(setting, {"request": request, "path": request.path, "query": request.query,
                                                     "method": request.method, "headers": headers}))
        except Exception:  # noqa: BLE001 - the operator's callable
            log.failure("server {server}: update_last_activity callable failed", server=spec.name)
            return True

    # ------------------------------------------------------------ raw socket
    def _raw_route(self, server, req):
        name = server.spec.name
        if not req.upgrade:
            return Reject(405, f"The server '{name}' is a raw socket server: only WebSocket connections are accepted.")
        counts = self._counts(server.spec, req)
        activity = self.activity if counts else None

        def handoff(target: Target):
            if counts:
                api.touch(server)
            key = (name, activity is not None)
            cached = self._bridges.get(key)
            if cached is None or cached[0] != target:
                start = bridge_start(self.reactor, self._endpoint(target), activity=activity)
                cached = self._bridges[key] = (target, start)
            return Handoff(cached[1])

        target = server.running_target()
        if target is not None:
            return handoff(target)
        d = server.ensure_started()
        d.addCallbacks(handoff, _rejected)
        return d

    def _endpoint(self, target: Target):
        """As HTTP requests connect: a unix socket, or localhost (127.0.0.1, then ::1)."""
        if target.unix_socket:
            return UNIXClientEndpoint(self.reactor, target.unix_socket, timeout=self.connect_timeout)
        return tcp_endpoint(self.reactor, "localhost", target.port, self.connect_timeout)


def _rejected(failure):
    if failure.check(StartError):
        return Reject(failure.value.status, failure.value.message)
    if failure.check(defer.CancelledError):
        return Reject(503, "The request was cancelled.")
    log.failure("starting a server failed", failure)
    return Reject(502, "The server could not be started.")
