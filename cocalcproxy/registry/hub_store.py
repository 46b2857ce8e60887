"""The hub's questions to its database (SPEC §6, §8), answered off the reactor thread.

``facts`` answers "who presents this credential, may they use this project,
and where does it run" in one interaction (three indexed lookups); ``placement``
answers the last part alone; ``touch`` sets ``projects.last_active``.  Results
are plain values (``auth.policy.Facts``, a host URL or None); the caches in
front of this (``registry/cache.py``) make sure a steady stream of requests
asks nothing at all.  ``queries`` counts interactions (tests and metrics).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..auth.credentials import SESSION, Credential
from ..auth.policy import Facts
from .database import connection_was_lost


@dataclass(frozen=True, slots=True)
class Answer:
    facts: Facts
    expires: float | None  # the credential's own expiry (Unix seconds), if any
    placement: str | None  # the project's host URL, None when not placed


#: Attempts per query while pooled connections turn out dead: one per pooled
#: connection and one more (``cp_max`` + 1; 5 for the default pool of 4).
def attempts(pool) -> int:
    return getattr(pool, "max", 4) + 1


class HubStore:
    def __init__(self, database, pool, clock=time) -> None:
        self.db = database  # registry.database.Database
        self.pool = pool  # adbapi.ConnectionPool
        self.clock = clock  # .time() gives Unix seconds
        self.queries = 0
        sql = database.sql
        self._session = sql("SELECT account_id, expire FROM remember_me WHERE hash = ?")
        self._key = sql("SELECT account_id, expire, project_id FROM api_keys WHERE hash = ?")
        self._account = sql("SELECT groups, banned FROM accounts WHERE account_id = ?")
        self._project = sql("SELECT p.users, h.url FROM projects p LEFT JOIN project_hosts h ON h.host_id = p.host_id "
                            "WHERE p.project_id = ?")
        self._touch = sql("UPDATE projects SET last_active = ? WHERE project_id = ?")

    def facts(self, credential: Credential, project_id: str):
        return self._run(self._facts, credential, project_id, self.clock.time())

    def placement(self, project_id: str):
        return self._run(self._placement, project_id)

    def _run(self, interaction, *args, tries: int | None = None):
        """One interaction; again (up to ``tries`` times) while the pool finds its
        connections dead (the database restarted): each such failure makes the
        pool drop that connection and open a new one, so a request need not fail."""
        if tries is None:
            tries = attempts(self.pool)
        self.queries += 1
        d = self.pool.runInteraction(interaction, *args)
        if tries > 1:
            def again(failure):
                if not connection_was_lost(failure):
                    return failure
                return self._run(interaction, *args, tries=tries - 1)

            d.addErrback(again)
        return d

    def touch(self, project_id: str):
        self.queries += 1
        return self.pool.runOperation(self._touch, (self.db.time_value(self.clock.time()), project_id))

    # ------------------------------------------------- in the pool's threads
    def _facts(self, txn, credential: Credential, project_id: str, now: float) -> Answer:
        db = self.db
        key_project = None
        if credential.kind == SESSION:
            txn.execute(self._session, (credential.hash,))
            row = txn.fetchone()
            account, expire = (row[0], row[1]) if row else (None, None)
        else:
            txn.execute(self._key, (credential.hash,))
            row = txn.fetchone()
            account, expire, key_project = (row[0], row[1], row[2]) if row else (None, None, None)
        expires = db.seconds(expire)
        if account is None or (expires is not None and expires <= now):
            return Answer(Facts(None), None, None)  # unknown or expired: it never authenticates
        account = str(account).lower()
        txn.execute(self._account, (account,))
        row = txn.fetchone()
        groups, banned = (tuple(db.groups(row[0])), bool(row[1])) if row else ((), False)
        txn.execute(self._project, (project_id,))
        row = txn.fetchone()
        users, placement = (db.users(row[0]), row[1]) if row else (None, None)
        facts = Facts(account, str(key_project).lower() if key_project else None, groups, banned, row is not None, users)
        return Answer(facts, expires, placement)

    def _placement(self, txn, project_id: str) -> str | None:
        txn.execute(self._project, (project_id,))
        row = txn.fetchone()
        return row[1] if row else None


__all__ = ["Answer", "HubStore"]
