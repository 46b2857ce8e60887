"""Role ``bridge``: a standalone WebSocket ↔ raw TCP bridge, websockify-style (SPEC §7).

Every WebSocket upgrade (any path under the base URL) is bridged to the
``--target`` endpoint, or to the target a ``?token=`` names in ``--token-file``.
Other requests: ``B healthz``; files from ``--web DIR`` (e.g. noVNC), else 405.
Parsing, limits, timeouts and error pages are the shared HTTP front's; only
the upgrade itself is handed to Autobahn (``cocalcproxy.wsbridge``).
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs

from twisted.application.service import MultiService
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.python import usage

from ..bridge_targets import TargetError, parse_target, tcp_endpoint
from ..bridge_tokens import Target, TokenFileError, TokenTable
from ..options import CommonOptions
from ..proxy import errors as pages
from ..routing.paths import check_path, split_target
from ..routing.types import Handoff, Local, Redirect, Reject
from ..service import add_listeners, proxy_config, tracked
from ..static_files import MEMORY_LIMIT, NeedsSlash, WebRoot, answer_and_close, read_small, stream_file

NAME = "bridge"
DESCRIPTION = "WebSocket <-> raw TCP bridge (websockify-style): --target tcp:HOST:PORT|unix:/path or --token-file."


class Options(CommonOptions):
    """WebSocket ↔ raw TCP bridge (SPEC §7).  Exactly one of --target and --token-file."""

    synopsis = "(--target tcp:HOST:PORT|unix:/path | --token-file FILE) [--web DIR] [--listen tcp:6080] [options]"
    default_listen = "tcp:6080"
    default_trusted = ()
    optParameters = CommonOptions.optParameters + [
        ["target", None, None,
         "Where every WebSocket connection goes: tcp:HOST:PORT, tcp:[IPv6]:PORT, unix:/path "
         "(or another Twisted client endpoint string)."],
        ["token-file", None, None,
         "websockify-style token file or directory ('token: host:port' or 'token: unix_socket:/path' lines); "
         "?token=NAME picks the target; re-read within 2 s of a change."],
        ["web", None, None, "Serve files from this directory to non-WebSocket requests (e.g. noVNC); else they get 405."],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        if bool(self["target"]) == bool(self["token-file"]):
            raise usage.UsageError("give exactly one of --target and --token-file")
        from twisted.internet import reactor

        self["target-endpoint"] = None
        if self["target"]:
            try:
                self["target-endpoint"] = parse_target(reactor, self["target"], self["connect-timeout"])
            except TargetError as e:
                raise usage.UsageError(f"--target: {e}") from None
        self["token-table"] = None
        if self["token-file"]:
            if not os.path.exists(self["token-file"]):
                raise usage.UsageError(f"--token-file: no such file or directory: {self['token-file']!r}")
            try:
                self["token-table"] = TokenTable(self["token-file"])
            except TokenFileError as e:
                raise usage.UsageError(f"--token-file: {e}") from None
        if self["web"] is not None and not os.path.isdir(self["web"]):
            raise usage.UsageError(f"--web: not a directory: {self['web']!r}")


class BridgeRouting:
    """Routes one request of the bridge role (pure apart from token and file look-ups)."""

    def __init__(self, reactor, factory, base: bytes, endpoint=None, tokens: TokenTable | None = None,
                 web: WebRoot | None = None, connect_timeout: float = 10.0) -> None:
        self.reactor = reactor
        self.factory = factory
        self.base = base
        self.healthz = base + b"healthz"
        self.tokens = tokens
        self.web = web
        self.connect_timeout = connect_timeout
        self.fixed_start = factory.starter(endpoint) if endpoint is not None else None
        self._endpoints: dict[Target, object] = {}

    def route(self, req):
        path, query = split_target(req.target)
        bad = check_path(path)
        if bad is not None:
            return bad
        if req.upgrade:
            return self._bridge(query)
        if path == self.healthz:
            return Local("healthz")
        head_only = req.method == b"HEAD"
        if self.web is None:
            return self._not_allowed(req, b"GET", "This address only accepts WebSocket connections.")
        if req.method not in (b"GET", b"HEAD"):
            return self._not_allowed(req, b"GET, HEAD", "Only GET and HEAD are allowed here.")
        rel = path[len(self.base):]
        if not path.startswith(self.base) or rel[:1] == b"/":
            # (an empty segment after the base: "//host/" would make a redirect to another site)
            return Reject(404, "No such file.")
        found = self.web.resolve(rel)
        if found is None:
            return Reject(404, "No such file.")
        if type(found) is NeedsSlash:
            return Redirect(path + b"/" + query)
        if found.size <= MEMORY_LIMIT:
            return Local("file", found.path.encode("utf-8", "surrogateescape"))
        return Handoff(stream_file(self.reactor, found, head_only), route="local")

    def local_page(self, route: Local, req):
        if route.name != "file":
            return None
        return read_small(route.arg.decode("utf-8", "surrogateescape"))

    def _bridge(self, query: bytes):
        if self.fixed_start is not None:
            return Handoff(self.fixed_start)
        values = parse_qs(query[1:].decode("latin-1")).get("token") if query else None
        if not values:
            return Reject(404, "A token is required: ?token=NAME.")
        target = self.tokens.lookup(values[0])
        if target is None:
            return Reject(404, "Unknown token.")
        return Handoff(self.factory.starter(self._endpoint(target)))

    def _endpoint(self, target: Target):
        endpoint = self._endpoints.get(target)
        if endpoint is None:
            if len(self._endpoints) > 4096:
                self._endpoints.clear()
            if target.path is not None:
                endpoint = UNIXClientEndpoint(self.reactor, target.path, timeout=self.connect_timeout)
            else:
                endpoint = tcp_endpoint(self.reactor, target.host, target.port, self.connect_timeout)
            self._endpoints[target] = endpoint
        return endpoint

    @staticmethod
    def _not_allowed(req, allow: bytes, message: str):
        data = pages.error_response(405, message, accept=req.get(b"accept"), close=True,
                                    head_only=req.method == b"HEAD", extra=(b"Allow: " + allow,))
        return Handoff(answer_and_close(data), route="local")


def make_service(options, reactor) -> MultiService:
    from ..memtune import tune_malloc
    from ..wsbridge import BridgeFactory

    tune_malloc()  # bulk relaying allocates 64-256 KiB buffers all the time (see memtune)
    config = proxy_config(options)
    web = WebRoot(options["web"]) if options["web"] else None
    routing = BridgeRouting(
        reactor,
        BridgeFactory(reactor),
        options["base-url"].encode("ascii"),
        endpoint=options["target-endpoint"],
        tokens=options["token-table"],
        web=web,
        connect_timeout=options["connect-timeout"],
    )
    top, tracker, pool = tracked(reactor, config, options["drain-timeout"])
    add_listeners(top, options, reactor, config, routing.route, tracker, pool, local_pages=routing.local_page)
    return top
