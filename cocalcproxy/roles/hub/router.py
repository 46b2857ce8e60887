"""The hub role's router: ``routing.hub`` parses and decides, this holds the caches.

A request for a project needs two answers: the access decision for
(credential, project) and the project's placement.  Both are cached — allowed
decisions for ``--auth-cache-ttl`` (never beyond the credential's own expiry),
refused ones for ``--auth-deny-ttl``, placements for ``--placement-ttl`` — so a
steady stream of requests makes no database query at all; a burst of misses
for one key makes one query (``registry/cache.py``).  The database's change
log (``registry/invalidation.py``) empties the affected entries at once, on
every hub; while the listener is not running (before it first connects, while
the database is down or back but not yet listened to) nothing is kept for more
than a second, since no change would reach the cache.  A hit answers synchronously; a miss returns a Deferred (the front
holds the client meanwhile).  A successful check sets ``projects.last_active``
at most once a minute per project.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.logger import Logger

from ...auth.policy import UNAUTHENTICATED, Decision, decide
from ...registry.cache import MISS, TTLCache
from ...registry.database import is_database_error
from ...routing.hub import DATABASE_DOWN, HubRequest, HubRouting, parse_hub_request, refusal, route_hub

log = Logger()

LAST_ACTIVE_EVERY = 60.0
UNHEARD_TTL = 1.0  # seconds an answer is kept while changes cannot be heard ("within a second")


@dataclass(frozen=True, slots=True)
class Cached:
    """A decision as cached: for how long, and what it depends on."""

    decision: Decision
    ttl: float
    tags: tuple[str, ...]


def _keep(cached: Cached):
    return cached.ttl, cached.tags


class HubRouter:
    def __init__(self, routing: HubRouting, store, clock, *, secret: bytes | None = None,
                 allow_ttl: float = 60.0, deny_ttl: float = 5.0, placement_ttl: float = 5.0, tls_for=None) -> None:
        self.routing = routing
        self.store = store  # registry.hub_store.HubStore
        self.clock = clock
        self.secret = secret
        self.allow_ttl = allow_ttl
        self.deny_ttl = deny_ttl
        self.placement_ttl = placement_ttl
        self.tls_for = tls_for
        self.decisions = TTLCache(clock)
        self.placements = TTLCache(clock)
        self.touched: dict[str, float] = {}
        self.listening = False  # the change listener runs: cached answers are dropped when they change

    # ----------------------------------------------------------- routing
    def route(self, req):
        hub = parse_hub_request(self.routing, req)
        if type(hub) is not HubRequest:
            return hub
        credential = hub.credential
        if credential is None:
            return refusal(UNAUTHENTICATED)
        key = (credential.hash, hub.project_id)
        cached = self.decisions.get(key)
        if cached is MISS:
            d = self.decisions.lookup(key, lambda: self._fetch_decision(hub), _keep)
            d.addCallback(lambda cached: self._placed(req, hub, cached.decision))
            d.addErrback(self._database_failed)
            return d
        return self._placed(req, hub, cached.decision)

    def _placed(self, req, hub: HubRequest, decision: Decision):
        if not decision.allowed:
            return refusal(decision)
        project = hub.project_id
        self._touch(project)
        placement = self.placements.get(project)
        if placement is MISS:
            d = self.placements.lookup(project, lambda: self.store.placement(project), self._keep_placement(project))
            d.addCallback(lambda placement: self._forward(req, hub, decision, placement))
            d.addErrback(self._database_failed)
            return d
        return self._forward(req, hub, decision, placement)

    def _forward(self, req, hub: HubRequest, decision: Decision, placement):
        return route_hub(self.routing, req, hub, decision, placement, self.secret, self.tls_for)

    # ----------------------------------------------------------- lookups
    def _fetch_decision(self, hub: HubRequest):
        d = self.store.facts(hub.credential, hub.project_id)
        epoch = self.placements.epoch
        project = hub.project_id

        def decided(answer) -> Cached:
            decision = decide(answer.facts, project)
            if decision.allowed and self.placements.epoch == epoch:
                # the same query found the placement: one round trip for both
                self.placements.put(project, answer.placement, self._ttl(self.placement_ttl), ("project:" + project,))
            if decision.allowed:
                ttl = self.allow_ttl
                if answer.expires is not None:  # never beyond the credential's own expiry
                    ttl = min(ttl, answer.expires - self.clock.seconds())
            else:
                ttl = self.deny_ttl
            tags = ["credential:" + hub.credential.hash, "project:" + project]
            if decision.account_id:
                tags.append("account:" + decision.account_id)
            return Cached(decision, self._ttl(ttl), tuple(tags))

        return d.addCallback(decided)

    def _keep_placement(self, project: str):
        return lambda placement: (self._ttl(self.placement_ttl), ("project:" + project,))

    def _ttl(self, ttl: float) -> float:
        """How long an answer may be kept: while no change can reach us, a second at most."""
        return ttl if self.listening else min(ttl, UNHEARD_TTL)

    def _database_failed(self, failure):
        if is_database_error(failure):
            log.warn("database unavailable: {error}", error=failure.getErrorMessage().strip()[:200])
            return DATABASE_DOWN
        return failure  # a bug: the front logs it and answers 502

    def _touch(self, project: str) -> None:
        now = self.clock.seconds()
        if now - self.touched.get(project, -LAST_ACTIVE_EVERY) < LAST_ACTIVE_EVERY:
            return
        if len(self.touched) > 100_000:
            self.touched.clear()
        self.touched[project] = now
        self.store.touch(project).addErrback(
            lambda f: log.warn("last_active of {project} not set: {error}", project=project,
                               error=f.getErrorMessage().strip()[:200]))

    # ------------------------------------------------------ invalidation
    def invalidate(self, payload: str) -> None:
        """A change the database reported (``table:key``): forget what depended on it."""
        table, _, key = payload.partition(":")
        if table in ("remember_me", "api_keys"):
            self.decisions.invalidate("credential:" + key)
        elif table == "accounts":
            self.decisions.invalidate("account:" + key)
        elif table == "projects":
            self.decisions.invalidate("project:" + key)
            self.placements.invalidate("project:" + key)
        elif table == "project_hosts":
            self.placements.clear()
        else:
            self.reset()

    def hearing(self, listening: bool) -> None:
        """The change listener started (changes may have been missed) or stopped
        (none will reach us): forget everything either way."""
        self.listening = listening
        self.reset()

    def reset(self) -> None:
        """Changes may have been missed: forget everything."""
        self.decisions.clear()
        self.placements.clear()
