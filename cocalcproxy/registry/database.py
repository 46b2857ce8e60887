"""Which database, and how to talk to it: ``--database`` URLs, connections, dialects.

``postgresql://…`` (psycopg 3; several hubs share one server) or
``sqlite:///PATH`` (the standard library's sqlite3; one machine; a relative
PATH is relative to the working directory, ``sqlite:////abs/path`` is
absolute).  This is the only module that imports psycopg.

SQL is written once with ``?`` placeholders; ``Database.sql`` turns them into
``%s`` for PostgreSQL.  Values differ by engine (SPEC §8): PostgreSQL gives
UUID, JSONB, TEXT[] and TIMESTAMPTZ values, SQLite TEXT and integer seconds;
``users``, ``groups`` and ``seconds`` make them the same Python values.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sqlite3
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_URL = "sqlite:///cocalcproxy-hub.sqlite3"
#: Seconds a connection attempt may take before the database counts as down.
CONNECT_TIMEOUT = 5
#: Seconds an SQLite writer waits for another writer's lock.
SQLITE_BUSY_TIMEOUT = 5.0


class DatabaseURLError(ValueError):
    pass


@dataclass(frozen=True)
class Database:
    """A parsed ``--database`` URL."""

    url: str
    kind: str  # "postgresql" or "sqlite"
    path: str = ""  # sqlite: the file

    @classmethod
    def parse(cls, url: str) -> "Database":
        scheme = url.split(":", 1)[0].lower()
        if scheme in ("postgresql", "postgres"):
            parts = urlsplit(url)
            if not parts.hostname and not parts.path.strip("/"):
                raise DatabaseURLError(f"{url!r}: no server or database in the URL")
            return cls(url, "postgresql")
        if scheme == "sqlite":
            if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
                raise DatabaseURLError(f"{url!r}: write sqlite:///PATH (relative) or sqlite:////PATH (absolute)")
            return cls(url, "sqlite", url[len("sqlite:///"):])
        raise DatabaseURLError(f"{url!r}: use postgresql://… or sqlite:///PATH")

    @property
    def postgres(self) -> bool:
        return self.kind == "postgresql"

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def __str__(self) -> str:
        """The URL without a password, for logs and error messages."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.url

    # ----------------------------------------------------------- connections
    def connect(self, application: str = "cocalcproxy"):
        """A blocking DB-API connection (the admin tool, the LISTEN connection);
        ``application`` names it in the server's views and logs."""
        if self.postgres:
            import psycopg

            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                   application_name=application)
        conn = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def pool(self, reactor, max_connections: int = 4):
        """A thread pool of connections for the hub (``twisted.enterprise.adbapi``):
        queries never run in the reactor thread; a connection that fails is
        dropped and a new one made on the next query."""
        from twisted.enterprise import adbapi

        if self.postgres:
            pool = adbapi.ConnectionPool("psycopg", self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                         application_name="cocalcproxy hub", cp_reactor=reactor, cp_reconnect=True,
                                         cp_noisy=False, cp_min=1, cp_max=max_connections)
        else:
            pool = adbapi.ConnectionPool("sqlite3", self.path, timeout=SQLITE_BUSY_TIMEOUT, check_same_thread=False,
                                         isolation_level=None, cp_reactor=reactor, cp_reconnect=True, cp_noisy=False,
                                         cp_min=1, cp_max=1, cp_openfun=_sqlite_open)
        pool.connectionFactory = _quiet_connection_factory()
        return pool

    def connection_ok(self, conn) -> bool:
        """Is this connection (from ``connect``) still usable?"""
        if not self.postgres:
            return True
        from psycopg import pq

        return conn.pgconn.status == pq.ConnStatus.OK

    def exists(self) -> bool:
        return self.postgres or os.path.exists(self.path)

    # ---------------------------------------------------------------- values
    def users(self, value) -> dict:
        """``projects.users``: ``{account_id: {"group": …}}``."""
        if isinstance(value, (str, bytes)):
            value = json.loads(value or "{}")
        return value if isinstance(value, dict) else {}

    def groups(self, value) -> list:
        """``accounts.groups``: a list of group names."""
        if isinstance(value, (str, bytes)):
            value = json.loads(value or "[]")
        return list(value) if isinstance(value, (list, tuple)) else []

    @staticmethod
    def seconds(value) -> float | None:
        """A time column as Unix seconds (None stays None)."""
        if value is None:
            return None
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return value.timestamp()
        return float(value)

    def time_value(self, seconds: float):
        """Unix seconds as a value for a time column of this engine."""
        if self.postgres:
            return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
        return int(seconds)

    def json_value(self, value) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    def groups_value(self, groups: list[str]):
        return list(groups) if self.postgres else self.json_value(list(groups))


def _sqlite_open(conn) -> None:
    conn.execute("PRAGMA foreign_keys = ON")


def is_database_error(failure) -> bool:
    """Is this a failure of the database (down, gone, locked), not of our code?"""
    from twisted.enterprise.adbapi import ConnectionLost

    if failure.check(ConnectionLost, sqlite3.Error):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return bool(failure.check(psycopg.Error))


def _quiet_connection_factory():
    """adbapi's connection wrapper, with two changes for a connection the server
    closed (every PostgreSQL restart): one warning line instead of the stock
    "Rollback failed" traceback, and the query's own error is marked so that
    ``connection_was_lost`` sees it (adbapi re-raises that error, never its
    ``ConnectionLost``).  Relies on ``Connection``'s ``_pool`` and
    ``_connection``: where a Twisted release lacks them, the stock rollback runs."""
    from twisted.enterprise import adbapi
    from twisted.logger import Logger

    log = Logger(namespace=__name__)

    class QuietConnection(adbapi.Connection):
        def rollback(self):
            pool, conn = getattr(self, "_pool", None), getattr(self, "_connection", None)
            if pool is None or conn is None or not pool.reconnect:
                return super().rollback()
            try:
                conn.rollback()
                cursor = conn.cursor()
                cursor.execute(pool.good_sql)
                cursor.close()
                conn.commit()
                return None
            except Exception as e:  # noqa: BLE001 - whatever the driver raises, the connection is gone
                log.warn("database connection lost ({error}); the next query opens a new one",
                         error=(str(e).strip().splitlines() or [type(e).__name__])[0][:200])
            pool.disconnect(conn)
            failed = sys.exc_info()[1]  # the query's error, which adbapi raises again after this
            if failed is not None:
                with contextlib.suppress(AttributeError, TypeError):
                    failed.cocalcproxy_connection_lost = True
            return None

    return QuietConnection


def connection_was_lost(failure) -> bool:
    """Did this query fail because its pooled connection was dead (so another
    attempt, on a new connection, may succeed)?"""
    from twisted.enterprise.adbapi import ConnectionLost

    return bool(failure.check(ConnectionLost)) or getattr(failure.value, "cocalcproxy_connection_lost", False)


__all__ = ["DEFAULT_URL", "Database", "DatabaseURLError", "connection_was_lost", "is_database_error"]
