"""Role ``bridge``: a standalone WebSocket ↔ raw TCP bridge, websockify-style (SPEC §7).

Every WebSocket upgrade (any path under the base URL) is bridged to the
``--target`` endpoint, or to the target a ``?token=`` names in ``--token-file``.
Other requests: ``B healthz``; files from ``--web DIR`` (e.g. noVNC), else 405.
Parsing, limits, timeouts and error pages are the shared HTTP front's; only
the upgrade itself is handed to Autobahn (``cocalcproxy.wsbridge``).
"""

from __future__ import annotations

from twisted.internet.endpoints import clientFromString

from ...routing.addresses import parse_endpoint_target
from ...routing.bridge import BridgeRouting
from ..services import RoleServices
from .options import BridgeConfig, Options

NAME = "bridge"
DESCRIPTION = "WebSocket <-> raw TCP bridge (websockify-style): --target tcp:HOST:PORT|unix:/path or --token-file."


def target_for(reactor, text: str):
    """An ``Address`` for tcp:/unix: targets (our connector), else Twisted's endpoint."""
    parsed = parse_endpoint_target(text)
    if parsed is not None:
        return parsed[0]
    return clientFromString(reactor, text)


def make_service(config: BridgeConfig, reactor):
    from ...registry.tokens import TokenTable
    from ...wsbridge import BridgeFactory
    from .memtune import tune_malloc
    from .router import BridgeRouter
    from .webroot import WebRoot

    tune_malloc()  # bulk relaying allocates 64-256 KiB buffers all the time (see memtune)
    common = config.common
    timeout = common.connect_timeout
    if config.target:
        parsed = parse_endpoint_target(config.target)
        if parsed is not None and parsed[1] is not None:
            timeout = parsed[1]
    factory = BridgeFactory(reactor, connect_timeout=timeout)
    router = BridgeRouter(
        reactor,
        factory,
        BridgeRouting(common.base_url.encode("ascii"), fixed_target=bool(config.target), web=bool(config.web)),
        target=target_for(reactor, config.target) if config.target else None,
        tokens=TokenTable(config.token_file) if config.token_file else None,
        web=WebRoot(config.web) if config.web else None,
    )
    services = RoleServices(reactor, common)
    services.listen(router.route, local_pages=router.local_page)
    return services.top


__all__ = ["DESCRIPTION", "NAME", "Options", "make_service"]
