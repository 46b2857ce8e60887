"""Servers registered by installed packages through entry points.

``jupyter_serverproxy_servers`` is jupyter-server-proxy's group, so existing
``jupyter-*-proxy`` packages work unchanged; ``cocalcproxy_servers`` is ours,
same shape.  Each entry point names a function returning one server's options
(the entry point's name is the server's name).  A broken one is skipped with a
warning naming it; it never stops the proxy.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from twisted.logger import Logger

from ...supervise.spec import ServerSpec, SpecError, parse_server

log = Logger()

GROUPS = ("jupyter_serverproxy_servers", "cocalcproxy_servers")


def discover(groups: tuple[str, ...] = GROUPS) -> dict[str, ServerSpec]:
    specs: dict[str, ServerSpec] = {}
    for group in groups:
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            where = f"entry point {ep.name!r} ({ep.value}) in group {group}"
            try:
                setup = ep.load()
                raw = setup()
            except Exception as e:  # noqa: BLE001 - someone else's package
                log.warn("skipping {where}: {error}", where=where, error=f"{type(e).__name__}: {e}")
                continue
            try:
                spec, warnings = parse_server(ep.name, raw, source=where)
            except SpecError as e:
                log.warn("skipping {where}: {error}", where=where, error=str(e))
                continue
            for w in warnings:
                log.warn("{where}: {warning}", where=where, warning=w)
            if ep.name in specs:
                log.warn("{where}: a server named {name!r} is already registered; keeping the first", where=where, name=ep.name)
                continue
            specs[ep.name] = spec
    return specs
