"""The hub's caches and router on a fake clock and a fake store (no database, no sockets).

Pinned down here: a steady stream of requests asks nothing; a burst of misses
asks once; TTLs (allow, deny, placement, a credential's own expiry); every kind
of invalidation; a database that fails gives 503 and nothing is cached.
"""

from __future__ import annotations

import sqlite3

from twisted.internet import defer
from twisted.internet.task import Clock

from cocalcproxy.auth.credentials import CookieNames
from cocalcproxy.auth.policy import Facts
from cocalcproxy.http1.head import parse_request_head
from cocalcproxy.registry.cache import MISS, TTLCache
from cocalcproxy.registry.hub_store import Answer
from cocalcproxy.roles.hub.router import HubRouter
from cocalcproxy.routing.hub import HubRouting
from cocalcproxy.routing.types import Forward, Reject

PID = "6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f"
ACC = "11111111-2222-4333-8444-555555555555"
HOST = "http://10.0.0.5:9001"


class FakeStore:
    """Answers from dicts; each call is recorded; ``hold`` keeps answers pending."""

    def __init__(self) -> None:
        self.users = {ACC: {"group": "owner"}}
        self.host = HOST
        self.expires = None
        self.calls: list[tuple] = []
        self.hold = False
        self.pending: list[tuple[defer.Deferred, object]] = []
        self.fail = False
        self.touched: list[str] = []

    def _answer(self, value):
        if self.fail:
            return defer.fail(sqlite3.OperationalError("unable to open database file"))
        if self.hold:
            d = defer.Deferred()
            self.pending.append((d, value))
            return d
        return defer.succeed(value)

    def facts(self, credential, project_id):
        self.calls.append(("facts", credential.hash, project_id))
        f = Facts(ACC, None, (), False, True, dict(self.users))
        return self._answer(Answer(f, self.expires, self.host))

    def placement(self, project_id):
        self.calls.append(("placement", project_id))
        return self._answer(self.host)

    def touch(self, project_id):
        self.touched.append(project_id)
        return defer.succeed(None)

    def release(self) -> None:
        pending, self.pending = self.pending, []
        for d, value in pending:
            d.callback(value)


def make_router(listening: bool = True, **kw):
    clock = Clock()
    clock.advance(1000)
    store = FakeStore()
    router = HubRouter(HubRouting(b"/", CookieNames.for_base("/")), store, clock, secret=b"s3", **kw)
    if listening:
        router.hearing(True)  # the change listener is up, as in a running hub
    return router, store, clock


def req(cookie: bytes = b"remember_me=abc", target: str = f"/{PID}/port/8000/"):
    return parse_request_head(f"GET {target} HTTP/1.1\r\nHost: h\r\n".encode() + b"Cookie: " + cookie + b"\r\n")


def result(route):
    """The route a router returned, waiting for nothing (fake store)."""
    if isinstance(route, defer.Deferred):
        out = []
        route.addBoth(out.append)
        assert out, "the route is still pending"
        return out[0]
    return route


# ------------------------------------------------------------------ cache

def test_ttl_cache_expires_tags_and_bounds():
    clock = Clock()
    c = TTLCache(clock, max_size=3)
    c.put("a", 1, 10, ("t1",))
    c.put("b", 2, 5, ("t1", "t2"))
    assert (c.get("a"), c.get("b")) == (1, 2)
    clock.advance(5)
    assert c.get("b") is MISS and c.get("a") == 1
    c.put("c", 3, 10, ("t2",))
    assert c.invalidate("t2") == 1 and c.get("c") is MISS and c.get("a") == 1
    for k in "defg":
        c.put(k, k, 10)
    assert len(c) == 3 and c.get("a") is MISS  # the oldest went first
    c.put("z", 0, 0)
    assert c.get("z") is MISS  # a TTL of 0 stores nothing


def test_ttl_cache_lookup_is_deduplicated_and_not_stored_across_an_invalidation():
    c = TTLCache(Clock())
    fetched = []
    pending = defer.Deferred()

    def fetch():
        fetched.append(1)
        return pending

    got = []
    for _ in range(5):
        c.lookup("k", fetch, lambda v: (10, ("tag",))).addCallback(got.append)
    assert fetched == [1]
    c.invalidate("other")  # something changed while the query ran
    pending.callback("v")
    assert got == ["v"] * 5 and c.get("k") is MISS
    c.lookup("k", lambda: defer.succeed("w"), lambda v: (10, ("tag",)))
    assert c.get("k") == "w"


# ----------------------------------------------------------------- router

def test_steady_state_makes_no_query():
    router, store, clock = make_router()
    first = result(router.route(req()))
    assert type(first) is Forward and (first.host, first.port) == ("10.0.0.5", 9001)
    assert first.set_headers == ((b"X-CoCalc-Hub-Secret", b"s3"),)
    assert store.calls == [("facts", store.calls[0][1], PID)]  # one query found decision and placement
    for _ in range(100):
        clock.advance(0.01)
        route = router.route(req())
        assert type(route) is Forward  # answered synchronously, from the caches
    assert len(store.calls) == 1


def test_a_burst_of_misses_makes_one_query():
    router, store, clock = make_router()
    store.hold = True
    routes = [router.route(req()) for _ in range(20)]
    assert all(isinstance(r, defer.Deferred) for r in routes)
    assert len(store.calls) == 1
    store.release()
    assert all(type(result(r)) is Forward for r in routes)


def test_ttls_allow_deny_placement_and_credential_expiry():
    router, store, clock = make_router(allow_ttl=60, deny_ttl=5, placement_ttl=5)
    result(router.route(req()))
    clock.advance(6)  # placement expired, decision not
    assert type(result(router.route(req()))) is Forward
    assert [c[0] for c in store.calls] == ["facts", "placement"]
    clock.advance(55)
    result(router.route(req()))
    assert [c[0] for c in store.calls][-1] == "facts"
    store.users = {}
    clock.advance(61)
    assert result(router.route(req())).status == 403
    store.users = {ACC: {"group": "owner"}}
    clock.advance(4)
    assert result(router.route(req())).status == 403  # a refusal is cached for 5 s...
    clock.advance(1.1)
    assert type(result(router.route(req()))) is Forward  # ...then asked again
    router2, store2, clock2 = make_router(allow_ttl=60)
    store2.expires = clock2.seconds() + 10  # a session that ends in 10 s
    result(router2.route(req()))
    clock2.advance(10.1)
    result(router2.route(req()))
    assert [c[0] for c in store2.calls].count("facts") == 2


def test_invalidations_reach_the_right_entries():
    router, store, clock = make_router()
    result(router.route(req()))
    n = len(store.calls)
    router.invalidate("projects:00000000-0000-4000-8000-000000000000")
    result(router.route(req()))
    assert len(store.calls) == n  # another project: nothing forgotten
    for payload in (f"projects:{PID}", f"accounts:{ACC}", f"remember_me:{store.calls[0][1]}", "api_keys:x"):
        before = len(store.calls)
        router.invalidate(payload)
        result(router.route(req()))
        expected = 0 if payload == "api_keys:x" else 1
        assert len(store.calls) - before == expected, payload
    router.invalidate("project_hosts:h1")
    result(router.route(req()))
    assert store.calls[-1] == ("placement", PID)
    before = len(store.calls)
    router.reset()
    result(router.route(req()))
    assert len(store.calls) == before + 1


def test_revoked_collaborator_is_refused_at_once_after_the_notification():
    router, store, clock = make_router(allow_ttl=60)
    assert type(result(router.route(req()))) is Forward
    store.users = {}
    assert type(result(router.route(req()))) is Forward  # cached: the change is not known yet
    router.invalidate(f"projects:{PID}")
    assert result(router.route(req())).status == 403


def test_moved_and_stopped_projects_follow_the_notification():
    router, store, clock = make_router(placement_ttl=60)
    result(router.route(req()))
    store.host = "http://10.0.0.6:9001"
    router.invalidate(f"projects:{PID}")
    assert result(router.route(req())).host == "10.0.0.6"
    store.host = None
    router.invalidate(f"projects:{PID}")
    route = result(router.route(req()))
    assert route.status == 503 and b"Retry-After: 5" in route.headers


def test_database_failure_is_503_and_nothing_is_cached():
    router, store, clock = make_router()
    store.fail = True
    route = result(router.route(req()))
    assert type(route) is Reject and route.status == 503 and "database" in route.message
    store.fail = False
    assert type(result(router.route(req()))) is Forward


def test_no_credential_is_401_without_a_query():
    router, store, clock = make_router()
    route = router.route(parse_request_head(f"GET /{PID}/ HTTP/1.1\r\nHost: h\r\n".encode()))
    assert route.status == 401 and store.calls == []


def test_last_active_at_most_once_a_minute_per_project():
    router, store, clock = make_router()
    for _ in range(30):
        result(router.route(req()))
        clock.advance(1)
    assert store.touched == [PID]
    clock.advance(31)
    result(router.route(req()))
    assert store.touched == [PID, PID]


def test_while_changes_cannot_be_heard_nothing_is_cached_beyond_a_second():
    """Before the listener connects, and whenever it is lost (the database
    restarting), a revocation would never reach the cache: answers are kept for
    a second at most, then asked again."""
    router, store, clock = make_router(listening=False, allow_ttl=60, placement_ttl=60)
    assert type(result(router.route(req()))) is Forward
    n = len(store.calls)
    clock.advance(0.5)
    assert type(result(router.route(req()))) is Forward
    assert len(store.calls) == n  # within the second: cached
    store.users = {}  # removed from the project; no notification will come
    clock.advance(0.6)
    assert result(router.route(req())).status == 403

    router.hearing(True)  # the listener is back: everything is forgotten, long TTLs again
    store.users = {ACC: {"group": "owner"}}
    assert type(result(router.route(req()))) is Forward
    n = len(store.calls)
    clock.advance(30)
    assert type(result(router.route(req()))) is Forward
    assert len(store.calls) == n

    router.hearing(False)  # lost again: forgotten at once, short TTLs
    assert type(result(router.route(req()))) is Forward
    assert len(store.calls) > n
