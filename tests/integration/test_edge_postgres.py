"""The hub on a real PostgreSQL (started by the test with initdb/pg_ctl): two hubs
share it and follow every change within a second through LISTEN/NOTIFY; the
database stopped and started again under the hubs gives 503s, then recovery
without a restart; steady-state requests make no query at all."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support import postgres
from tests.support.chain import PROJECT, Chain, host_registry

pytestmark = pytest.mark.skipif(not postgres.available() and not __import__("os").environ.get("CI"),
                                reason="PostgreSQL is not installed here; .ci/run installs it")


@pytest.fixture(scope="module")
def chain(tmp_path_factory, pg):
    c = Chain(tmp_path_factory.mktemp("pgchain"), database_url=pg.url)
    c.hub2 = c.start_hub()
    yield c
    c.close()


def within(seconds: float, predicate) -> float | None:
    """How long it took ``predicate`` to hold (None: not within ``seconds``)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def statuses(chain, path, cookie):
    return tuple(chain.https("GET", path, cookie=cookie, hub=hub).status for hub in (chain.hub, chain.hub2))


def test_two_hubs_follow_a_revoked_collaborator_within_a_second(chain, app):
    account = chain.admin.add_account(str(uuid.uuid4()), False)
    chain.admin.set_member(PROJECT, account, "collaborator")
    cookie = chain.cookie(chain.admin.new_secret("remember_me", account, 1))
    path = chain.backend_url_path(app.port)
    assert statuses(chain, path, cookie) == (200, 200)  # both hubs now cache "allowed" for 60 s
    chain.admin.set_member(PROJECT, account, None)
    took = within(1.0, lambda: statuses(chain, path, cookie) == (403, 403))
    assert took is not None, "a hub still let the removed collaborator in after 1 s"


def test_two_hubs_follow_a_moved_project_within_a_second(chain, app, tmp_path):
    path = chain.backend_url_path(app.port, "headers")
    assert statuses(chain, path, chain.cookie()) == (200, 200)
    registry2 = tmp_path / "registry2.sqlite3"
    host_registry(registry2, [(PROJECT, "running", chain.project.port)])
    host2 = chain.start_host(registry2)
    chain.admin.add_host("h2", f"http://127.0.0.1:{host2.port}")
    chain.admin.place(PROJECT, "h2")
    host_registry(chain.registry, [])  # the old host forgets it: a request still sent there would be 404
    try:
        took = within(1.0, lambda: statuses(chain, path, chain.cookie()) == (200, 200))
        assert took is not None, "a hub still sent the moved project to its old host after 1 s"
    finally:
        host_registry(chain.registry, [(PROJECT, "running", chain.project.port)])
        chain.admin.place(PROJECT, "h1")
        assert within(3.0, lambda: statuses(chain, path, chain.cookie()) == (200, 200)) is not None


def test_revoked_api_key_and_banned_account_on_both_hubs(chain, app):
    key = chain.admin.new_secret("api_keys", chain.owner, None)
    path = chain.backend_url_path(app.port)
    auth = {"Authorization": f"Bearer {key}"}
    get = lambda: tuple(chain.https("GET", path, headers=auth, hub=h).status for h in (chain.hub, chain.hub2))  # noqa: E731
    assert get() == (200, 200)
    chain.admin.revoke("api_keys", key, None, None)
    assert within(1.0, lambda: get() == (401, 401)) is not None
    account = chain.admin.add_account(str(uuid.uuid4()), False)
    chain.admin.set_member(PROJECT, account, "owner")
    cookie = chain.cookie(chain.admin.new_secret("remember_me", account, 1))
    assert statuses(chain, path, cookie) == (200, 200)
    chain.admin.set_banned(account, True)
    assert within(1.0, lambda: statuses(chain, path, cookie) == (403, 403)) is not None


def test_steady_state_requests_make_no_database_query(chain, app, pg):
    """Counted in the server's own statement log, by the hubs' connection name."""
    path = chain.backend_url_path(app.port)
    account = chain.admin.add_account(str(uuid.uuid4()), False)
    chain.admin.set_member(PROJECT, account, "collaborator")
    cookie = chain.cookie(chain.admin.new_secret("remember_me", account, 1))
    before = len(pg.statements("cocalcproxy hub"))
    started = time.monotonic()
    for _ in range(200):
        assert chain.https("GET", path, cookie=cookie).status == 200
    elapsed = time.monotonic() - started
    ran = pg.statements("cocalcproxy hub")[before:]
    credential = [q for q in ran if "FROM remember_me" in q or "FROM accounts" in q]
    placement = [q for q in ran if "FROM projects p" in q]
    touches = [q for q in ran if q.startswith("UPDATE projects SET last_active")]
    # the first request: one interaction (credential, account, project + placement);
    # then nothing per request: only the placement's 5 s TTL renews it
    assert len(credential) == 2, ran
    assert 1 <= len(placement) <= 1 + int(elapsed / 5), (elapsed, ran)
    assert len(touches) <= 1 and len(ran) == len(credential) + len(placement) + len(touches), ran


def test_database_stopped_and_started_under_the_hubs(chain, app, pg):
    account = chain.admin.add_account(str(uuid.uuid4()), False)
    chain.admin.set_member(PROJECT, account, "collaborator")
    fresh = chain.cookie(chain.admin.new_secret("remember_me", account, 1))
    path = chain.backend_url_path(app.port)
    chain.admin.conn.close()
    pg.stop()
    try:
        r = chain.https("GET", path, cookie=fresh)  # not cached: needs the database
        assert r.status == 503 and b"database" in r.body and r.header("Retry-After") == "5"
        assert chain.https("GET", "/healthz").status == 200
    finally:
        pg.start()
    chain.admin.conn = chain.db.connect()
    took = within(15.0, lambda: statuses(chain, path, fresh) == (200, 200))
    assert took is not None, "the hubs did not recover by themselves"
    # and the change listener is back: a revocation is followed again
    chain.admin.set_member(PROJECT, account, None)
    assert within(5.0, lambda: statuses(chain, path, fresh) == (403, 403)) is not None
