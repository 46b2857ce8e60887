"""The bridge role's router: ``routing.bridge`` decides, this looks things up.

A ``BridgeTo`` becomes a ``Handoff`` to the WebSocket bridge with the target
``--target`` names or the token file maps the token to; a ``WebFile`` becomes a
small file answered from memory, a large one streamed, a directory redirect or
a 404.
"""

from __future__ import annotations

from ...net.filestream import stream_file
from ...proxy import pages
from ...routing.bridge import NO_FILE, BridgeRouting, BridgeTo, WebFile, route_bridge
from ...routing.types import Handoff, Local, Redirect, Reject
from .webroot import MEMORY_LIMIT, NeedsSlash, WebRoot, read_small


class BridgeRouter:
    def __init__(self, reactor, factory, routing: BridgeRouting, target=None, tokens=None,
                 web: WebRoot | None = None) -> None:
        self.reactor = reactor
        self.factory = factory  # wsbridge.BridgeFactory
        self.routing = routing
        self.tokens = tokens  # registry.tokens.TokenTable
        self.web = web
        self.fixed_start = factory.starter(target) if target is not None else None
        self._starts: dict = {}

    def route(self, req):
        decision = route_bridge(self.routing, req)
        kind = type(decision)
        if kind is BridgeTo:
            return self._bridge(decision.token)
        if kind is WebFile:
            return self._file(decision, req.method == b"HEAD")
        return decision

    def _bridge(self, token: str | None):
        if token is None:
            return Handoff(self.fixed_start)
        address = self.tokens.lookup(token)
        if address is None:
            return Reject(404, "Unknown token.")
        start = self._starts.get(address)
        if start is None:
            if len(self._starts) > 4096:
                self._starts.clear()
            start = self._starts[address] = self.factory.starter(address)
        return Handoff(start)

    def _file(self, decision: WebFile, head_only: bool):
        found = self.web.resolve(decision.rel)
        if found is None:
            return NO_FILE
        if type(found) is NeedsSlash:
            return Redirect(decision.path + b"/" + decision.query)
        if found.size <= MEMORY_LIMIT:
            return Local("file", found.path.encode("utf-8", "surrogateescape"))

        def head(size: int) -> bytes:
            return pages.response_head(200, found.ctype, size, close=True)

        missing = pages.error_response(404, "No such file.", close=True, head_only=head_only)
        return Handoff(stream_file(self.reactor, found.path, head, head_only, missing), route="local")

    def local_page(self, route: Local, req):
        if route.name != "file":
            return None
        return read_small(route.arg.decode("utf-8", "surrogateescape"))
